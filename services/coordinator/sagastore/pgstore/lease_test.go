package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/pgstore"
	"github.com/upshift/upshift/services/coordinator/sagastore/storetest"
)

func TestLeaseConformance(t *testing.T) {
	t.Parallel()
	storetest.RunLease(t, func(t testing.TB) storetest.LeaseHarness {
		url := pgtest.Database(t)
		const renew = 500 * time.Millisecond
		return storetest.LeaseHarness{TTL: renew,
			New: func(t testing.TB, holder string) sagastore.Lease {
				l, err := pgstore.NewLease(url, renew)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = l.Release(context.Background()) })
				return l
			},
			// A dead holder's connection ends: PostgreSQL frees its lock.
			Kill: func(t testing.TB, _ sagastore.Lease) { pgtest.KillAdvisoryHolder(t, url, pgstore.LeaseKey) }}
	})
}
