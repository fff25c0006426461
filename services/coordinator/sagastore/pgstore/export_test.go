package pgstore

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// KillLeaseHolder ends, from another connection, the session holding the
// lease in the database at url, as the death of its process would.
func KillLeaseHolder(t testing.TB, url string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	// A bigint advisory key is in classid (high half) and objid (low).
	err = conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid::bigint = $1 AND objid::bigint = $2`, LeaseKey>>32, LeaseKey&0xffffffff).Scan(&n)
	if err != nil || n != 1 {
		t.Fatalf("kill the lease's holder: %v, %d sessions", err, n)
	}
}

// ActiveRows is the predicate of the queries of sagas in flight.
var ActiveRows = activeRows
