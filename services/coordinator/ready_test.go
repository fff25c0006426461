package coordinator_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/pkg/saga"
)

// A coordinator whose PostgreSQL store refuses connections is not ready,
// and is again once the store answers; what was submitted meanwhile ends.
func TestNotReadyWhileTheStoreIsUnreachable(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.Database(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	db := strings.TrimPrefix(u.Path, "/") // pgtest's names are plain
	name := pgx.Identifier{db}.Sanitize()
	admin := func(sql string) {
		t.Helper()
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, pgtest.ServerURL())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	w := newWorldOn(t, func(t testing.TB, _ jetstream.JetStream) opened { return openPostgresAt(t, dbURL) }, "a")
	// Few deliveries: a request failing on the unreachable store instead of
	// being held would spend them all during the outage, whatever the load.
	w.cons = fast
	w.cons.MaxDeliver = 3
	c, _ := w.coordinator("c1")
	if err := c.Check(); err != nil {
		t.Fatalf("ready: %v", err)
	}

	admin("ALTER DATABASE " + name + " ALLOW_CONNECTIONS false")
	admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + db + "'")
	natstest.Eventually(t, natstest.Patience, "not ready", func() bool { return c.Check() != nil })
	if err := c.Check(); !strings.Contains(err.Error(), "store") {
		t.Fatalf("why not ready: %v", err)
	}
	id := w.submit(request("test", "a"))
	time.Sleep(3 * time.Second) // time for three deliveries, were it not held

	admin("ALTER DATABASE " + name + " ALLOW_CONNECTIONS true")
	natstest.Eventually(t, natstest.Patience, "ready again", func() bool { return c.Check() == nil })
	if s := w.wait(id, natstest.Patience); s.State != saga.StateSucceeded {
		t.Fatalf("saga %s ended %s: %s", id, s.State, s.Reason)
	}
}
