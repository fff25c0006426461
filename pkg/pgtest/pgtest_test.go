package pgtest_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/upshift/upshift/pkg/pgtest"
)

func TestDatabaseIsFreshAndDroppedAfterTheTest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var urls [2]string
	// The group returns once both tests, run at once, have ended.
	t.Run("group", func(t *testing.T) {
		for i := range urls {
			t.Run("test", func(t *testing.T) {
				t.Parallel()
				urls[i] = pgtest.Database(t)
				conn, err := pgx.Connect(ctx, urls[i])
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				var tables int
				if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
					t.Fatal(err)
				}
				if tables != 0 {
					t.Fatalf("a fresh database has %d tables", tables)
				}
				// Left open on purpose: the clean-up must drop the database anyway.
				if _, err := pgx.Connect(ctx, urls[i]); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
	if urls[0] == urls[1] {
		t.Fatalf("two tests got the same database %s", urls[0])
	}
	for _, u := range urls {
		_, err := pgx.Connect(ctx, u)
		var pg *pgconn.PgError
		if !errors.As(err, &pg) || pg.Code != "3D000" {
			t.Fatalf("database %s still reachable after its test: %v", u, err)
		}
	}
}

// TestUnreachableServerFails runs the helper below in a child process
// pointed at a closed port: the test must fail, saying how to start
// PostgreSQL, and never pass or skip.
func TestUnreachableServerFails(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDatabase$", "-test.v")
	cmd.Env = append(os.Environ(), "PGTEST_HELPER=1",
		pgtest.EnvURL+"=postgres://postgres@"+addr+"/test?sslmode=disable&connect_timeout=5")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("child did not fail: %v\n%s", err, out)
	}
	for _, want := range []string{"--- FAIL: TestHelperDatabase", "cannot reach PostgreSQL", "pg_ctlcluster", pgtest.EnvURL} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
}

func TestHelperDatabase(t *testing.T) {
	if os.Getenv("PGTEST_HELPER") != "1" {
		t.Skip("run by TestUnreachableServerFails in a child process")
	}
	pgtest.Database(t)
	t.Log("pgtest.Database returned")
}
