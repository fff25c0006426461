package pgtest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// State is what a database holds, to check that a restore brought it back:
// its schema (columns, constraints, indexes, from the catalogs) and every
// table's rows, each row as its text form.
type State struct {
	Schema []string
	Rows   map[string][]string
}

const schemaQuery = `
SELECT format('column %s.%s.%s %s null=%s default=%s', table_schema, table_name, column_name, data_type, is_nullable, coalesce(column_default, ''))
FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT format('constraint %s %s %s', c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid))
FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT format('index %s', indexdef) FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1`

const tablesQuery = `
SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables
WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`

// Capture reads the state of the database at url.
func Capture(t testing.TB, url string) State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("pgtest: capture: %v", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	s := State{Rows: map[string][]string{}}
	if s.Schema, err = texts(ctx, conn, schemaQuery); err != nil {
		t.Fatalf("pgtest: capture the schema: %v", err)
	}
	tables, err := texts(ctx, conn, tablesQuery)
	if err != nil {
		t.Fatalf("pgtest: list tables: %v", err)
	}
	for _, tbl := range tables {
		if s.Rows[tbl], err = texts(ctx, conn, "SELECT r::text FROM "+tbl+" r ORDER BY 1"); err != nil {
			t.Fatalf("pgtest: read %s: %v", tbl, err)
		}
	}
	return s
}

// Same fails t unless the database at url holds exactly want: the same
// schema, the same tables, and in each table the same rows, checked by the
// server with EXCEPT both ways against want's rows loaded into a temporary
// table (so duplicates count: EXCEPT ALL).
func Same(t testing.TB, url string, want State) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("pgtest: compare: %v", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	schema, err := texts(ctx, conn, schemaQuery)
	if err != nil {
		t.Fatalf("pgtest: read the schema: %v", err)
	}
	if !slices.Equal(schema, want.Schema) {
		t.Errorf("schema differs:\n got %q\nwant %q", schema, want.Schema)
	}
	tables, err := texts(ctx, conn, tablesQuery)
	if err != nil {
		t.Fatalf("pgtest: list tables: %v", err)
	}
	var wantTables []string
	for tbl := range want.Rows {
		wantTables = append(wantTables, tbl)
	}
	slices.Sort(wantTables)
	if !slices.Equal(tables, wantTables) {
		t.Errorf("tables differ: got %q, want %q", tables, wantTables)
	}
	for _, tbl := range tables {
		rows, ok := want.Rows[tbl]
		if !ok {
			continue
		}
		if _, err := conn.Exec(ctx, "CREATE TEMP TABLE pgtest_want (r text); "); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"pgtest_want"}, []string{"r"}, pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			return []any{rows[i]}, nil
		})); err != nil {
			t.Fatal(err)
		}
		for _, q := range []struct{ what, sql string }{
			{"not in the state before", "SELECT r::text FROM " + tbl + " r EXCEPT ALL SELECT r FROM pgtest_want"},
			{"missing", "SELECT r FROM pgtest_want EXCEPT ALL SELECT r::text FROM " + tbl + " r"},
		} {
			diff, err := texts(ctx, conn, q.sql)
			if err != nil {
				t.Fatalf("pgtest: compare %s: %v", tbl, err)
			}
			if len(diff) > 0 {
				t.Errorf("%s: %d rows %s, e.g. %q", tbl, len(diff), q.what, diff[0])
			}
		}
		if _, err := conn.Exec(ctx, "DROP TABLE pgtest_want"); err != nil {
			t.Fatal(err)
		}
	}
}

func texts(ctx context.Context, conn *pgx.Conn, sql string) ([]string, error) {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sql, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
