package kvstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/kvstore"
	"github.com/upshift/upshift/services/coordinator/sagastore/storetest"
)

func TestLeaseConformance(t *testing.T) {
	t.Parallel()
	storetest.RunLease(t, func(t testing.TB) storetest.LeaseHarness {
		_, js := natstest.Start(t)
		const ttl = 2 * time.Second
		return storetest.LeaseHarness{TTL: ttl,
			New: func(t testing.TB, holder string) sagastore.Lease {
				l, err := kvstore.OpenLease(context.Background(), js, streams.Config{}, holder, ttl)
				if err != nil {
					t.Fatal(err)
				}
				return l
			},
			// A dead holder renews no more: its key expires.
			Kill: func(testing.TB, sagastore.Lease) {}}
	})
}
