package pgdump_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/upshift/upshift/pkg/pgdump"
	"github.com/upshift/upshift/pkg/pgtest"
)

// Seed is a small schema with constraints and rows, shared with the
// end-to-end tests' idea of an application's database.
const seed = `
CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL UNIQUE, since date NOT NULL DEFAULT '2020-01-01');
CREATE TABLE orders (id bigserial PRIMARY KEY, customer int NOT NULL REFERENCES customers(id),
	total numeric(10,2) NOT NULL CHECK (total >= 0), note text);
CREATE INDEX orders_customer ON orders (customer);
CREATE SCHEMA audit;
CREATE TABLE audit.log (at timestamptz NOT NULL, what text);
INSERT INTO customers (email) SELECT 'c' || i || '@example.com' FROM generate_series(1, 50) i;
INSERT INTO orders (customer, total, note) SELECT 1 + i % 50, i * 1.5, CASE WHEN i % 7 = 0 THEN NULL ELSE 'n' || i END FROM generate_series(1, 500) i;
INSERT INTO audit.log VALUES ('2024-01-01T00:00:00Z', 'a'), ('2024-01-01T00:00:00Z', 'a');`

// What a failed migration does: alters a table, deletes rows, adds a table.
const migrate = `
ALTER TABLE orders ADD COLUMN currency text NOT NULL DEFAULT 'EUR';
ALTER TABLE customers DROP COLUMN since;
DELETE FROM orders WHERE id % 3 = 0;
DELETE FROM audit.log;
CREATE TABLE shipments (id int PRIMARY KEY, order_id bigint REFERENCES orders(id));
INSERT INTO shipments VALUES (1, 1);`

func tools() pgdump.Tools { return pgdump.Tools{Path: os.Getenv("PATH"), Home: os.Getenv("HOME")} }

// A dump records every table's rows; after a migration changed the schema
// and the rows, the restore brings back exactly what was dumped: the same
// schema, the same rows (EXCEPT both ways), and nothing the migration added.
func TestDumpThenRestoreUndoesAMigration(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	pgtest.Exec(t, url, seed)
	before := pgtest.Capture(t, url)
	file := filepath.Join(t.TempDir(), "db.dump")
	ctx := context.Background()
	d, err := tools().Take(ctx, url, file)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]int64{}
	for _, tb := range d.Tables {
		rows[tb.String()] = tb.Rows
	}
	if rows["public.customers"] != 50 || rows["public.orders"] != 500 || rows["audit.log"] != 2 || len(rows) != 3 {
		t.Fatalf("counts %v", rows)
	}
	if d.SHA256 == "" || d.Size == 0 || !strings.HasPrefix(d.ServerVersion, "1") || !strings.Contains(d.Client, "pg_dump") {
		t.Fatalf("dump %+v", d)
	}
	n, err := tools().Verify(ctx, file, d)
	if err != nil || n < 5 {
		t.Fatalf("verify: %d entries, %v", n, err)
	}

	pgtest.Exec(t, url, migrate)
	// A session the application left open is ended by the swap.
	open, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close(ctx)
	r, err := tools().Restore(ctx, url, file, d)
	if err != nil {
		t.Fatal(err)
	}
	if r.Tables != 3 || r.Rows != 552 {
		t.Fatalf("restored %+v", r)
	}
	pgtest.Same(t, url, before)
}

// dumpedThenMigrated seeds a database, dumps it and migrates it: what a
// restore starts from. It returns the dump and the state after the migration.
func dumpedThenMigrated(t *testing.T) (url, file string, d *pgdump.Dump, after pgtest.State) {
	t.Helper()
	url = pgtest.Database(t)
	pgtest.Exec(t, url, seed)
	file = filepath.Join(t.TempDir(), "db.dump")
	d, err := tools().Take(context.Background(), url, file)
	if err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, url, migrate)
	return url, file, d, pgtest.Capture(t, url)
}

// A flipped byte in the dump is caught by its digest: Verify and Restore
// refuse, and the live database is not touched.
func TestACorruptDumpIsRefusedBeforeAnythingIsTouched(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, file, d, after := dumpedThenMigrated(t)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tools().Verify(ctx, file, d); !errors.Is(err, pgdump.ErrCorrupt) {
		t.Fatalf("verify: %v", err)
	}
	if _, err := tools().Restore(ctx, url, file, d); !errors.Is(err, pgdump.ErrCorrupt) {
		t.Fatalf("restore: %v", err)
	}
	pgtest.Same(t, url, after)
}

// Restored rows that differ from those recorded fail the restore before the
// swap: the live database stays as it was.
func TestRowsThatDoNotMatchTheBackupAreNotSwappedIn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, file, d, after := dumpedThenMigrated(t)
	d.Tables[0].Rows++ // as if the dump had lost a row
	_, err := tools().Restore(ctx, url, file, d)
	if !errors.Is(err, pgdump.ErrMismatch) || !strings.Contains(err.Error(), "audit.log has 2 rows, the backup 3") {
		t.Fatalf("restore: %v", err)
	}
	pgtest.Same(t, url, after)
}

// A missing pg_dump, or one older than the server, fails the backup with the
// reason; so does a DSN that does not parse, without quoting it.
func TestClientProblems(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	old := t.TempDir()
	for _, tool := range []string{"pg_dump", "pg_restore"} {
		script := "#!/bin/sh\necho '" + tool + " (PostgreSQL) 9.6.24'\n"
		if err := os.WriteFile(filepath.Join(old, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name  string
		tools pgdump.Tools
		dsn   string
		err   error
		says  string
	}{
		{"missing", pgdump.Tools{Dir: t.TempDir()}, url, pgdump.ErrNoClient, "pg_dump"},
		{"not on PATH", pgdump.Tools{Path: t.TempDir()}, url, pgdump.ErrNoClient, "--pg-bin-dir"},
		{"too old", pgdump.Tools{Dir: old}, url, pgdump.ErrClientTooOld, "pg_dump is 9, the server is 1"},
		{"bad DSN", tools(), "postgres://u:s3cret@[::1", pgdump.ErrDSN, "does not parse"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := c.tools.Take(context.Background(), c.dsn, filepath.Join(t.TempDir(), "db.dump"))
			if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.says) || strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("%v", err)
			}
		})
	}
}
