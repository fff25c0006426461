package pgstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pressly/goose/v3/lock"

	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/pgstore"
	"github.com/upshift/upshift/services/coordinator/sagastore/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, harness)
}

func harness(t testing.TB) storetest.Harness {
	_, js := natstest.Start(t)
	url := pgtest.Database(t)
	return storetest.Harness{Store: open(t, url), JS: js, Spoil: func(t testing.TB, id string) {
		tag, err := connect(t, url).Exec(context.Background(),
			`UPDATE sagas SET doc = jsonb_set(doc, '{state}', '5') WHERE id = $1`, id)
		if err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("spoil %s: %v, %d rows", id, err, tag.RowsAffected())
		}
	}}
}

func BenchmarkTransition(b *testing.B) {
	for _, n := range []int{1, 20, 1000} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) { storetest.BenchTransition(b, n, harness) })
	}
}

// open opens a store on url, closed when t ends.
func open(t testing.TB, url string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// connect opens a plain connection, to look at the tables as an operator
// would.
func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// migrations returns how many times each migration version was applied.
func migrations(t testing.TB, conn *pgx.Conn) map[int64]int {
	t.Helper()
	rows, err := conn.Query(context.Background(),
		`SELECT version_id, count(*) FROM saga_schema_version WHERE is_applied GROUP BY version_id`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]int{}
	for rows.Next() {
		var v int64
		var n int
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		out[v] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func checkMigratedOnce(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	applied := migrations(t, conn)
	if applied[1] != 1 {
		t.Fatalf("first migration applied %d times: %v", applied[1], applied)
	}
	for v, n := range applied {
		if n != 1 {
			t.Errorf("migration %d applied %d times", v, n)
		}
	}
}

func TestOpenTwiceMigratesOnce(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	first := open(t, url)
	first.Close()
	s := open(t, url)
	if _, err := s.List(context.Background(), sagastore.Filter{}); err != nil {
		t.Fatal(err)
	}
	checkMigratedOnce(t, connect(t, url))
}

func TestConcurrentOpensMigrateOnce(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	const n = 4
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			s, err := pgstore.Open(context.Background(), url)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
		}
	}
	checkMigratedOnce(t, connect(t, url))
}

// TestOpenWaitsForTheMigrationLock holds the advisory lock a migrating
// coordinator holds, and checks that Open neither migrates around it nor
// gives up, then migrates once it is released.
func TestOpenWaitsForTheMigrationLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.Database(t)
	holder, watcher := connect(t, url), connect(t, url)
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1)`, lock.DefaultLockID); err != nil {
		t.Fatal(err)
	}
	opened := make(chan error, 1)
	go func() {
		s, err := pgstore.Open(ctx, url)
		if err == nil {
			s.Close()
		}
		opened <- err
	}()
	natstest.Eventually(t, natstest.Patience, "Open tries the migration lock", func() bool {
		if len(opened) > 0 {
			return true // Open is done: the checks below say how
		}
		var n int
		err := watcher.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%pg_try_advisory_lock%'`).Scan(&n)
		return err == nil && n > 0
	})
	var tables int
	if err := watcher.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'sagas'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-opened:
		t.Fatalf("Open returned while another migration held the lock: %v", err)
	default:
	}
	if tables != 0 {
		t.Fatal("Open migrated while another migration held the lock")
	}
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock($1)`, lock.DefaultLockID); err != nil {
		t.Fatal(err)
	}
	if err := <-opened; err != nil {
		t.Fatalf("open after the lock was released: %v", err)
	}
	checkMigratedOnce(t, watcher)
}
