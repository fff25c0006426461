package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/deploy"
)

// withDatabase declares a database "app" for the host's target, its DSN in
// a file, and returns its URL.
func withDatabase(h *host) string {
	h.t.Helper()
	url := pgtest.Database(h.t)
	dsn := filepath.Join(h.dir, "app.dsn")
	must(h.t, os.WriteFile(dsn, []byte(url), 0o600))
	tg, err := h.exec.Targets.Get("web-1")
	must(h.t, err)
	tg.Databases = []targets.Database{{Name: "app", DSNFile: dsn}}
	h.exec.Targets, err = targets.New(map[string]targets.Target{"web-1": tg}, h.dir)
	must(h.t, err)
	return url
}

// migrations is release(v) shipping SQL migrations in goose's layout.
func migrations(v string, files ...entry) []entry {
	return append(append(release(v), dir("migrations/")), files...)
}

const (
	m1 = `-- +goose Up
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 10) i;
-- +goose Down
DROP TABLE items;
`
	m2 = `-- +goose Up
ALTER TABLE items ADD COLUMN price numeric NOT NULL DEFAULT 0;
DELETE FROM items WHERE id > 8;
-- +goose Down
ALTER TABLE items DROP COLUMN price;
`
	bad = `-- +goose Up
ALTER TABLE items ADD COLUMN stock int;
SELECT no_such_function();
-- +goose Down
`
)

func query(t *testing.T, url, q string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	must(t, err)
	defer conn.Close(ctx)
	var s string
	must(t, conn.QueryRow(ctx, q).Scan(&s))
	return s
}

// Deploy applies the migrations a release ships, between stop and start,
// and reports the schema version before and after; a failed migration fails
// the step with migrate_failed and the previous release is back in service.
func TestDeployAppliesTheReleasesMigrations(t *testing.T) {
	t.Parallel()
	h := newHost(t, 0)
	url := withDatabase(h)
	apply := func(from, to string, files ...entry) (out struct {
		failed bool
		reason string
		o      map[string]string
		line   events.ReportLine
		err    string
	}) {
		u, digest := h.pack("app-"+to, migrations(to, files...))
		res, _ := h.run(command(events.ActionApply, from, to, u, digest))
		out.failed, out.reason, out.o, out.line, out.err = res.Failed, res.Reason, res.Output, line(res.Report, "migrations"), res.Error
		if got := names(res.Report); !strings.Contains(got, "stop=ok migrations=") && from != "" {
			t.Fatalf("report order %s", got)
		}
		return out
	}
	out := apply("", "1.0", reg("migrations/0001_items.sql", m1))
	if out.failed || out.o["schema_before"] != "0" || out.o["schema_after"] != "1" || !strings.Contains(out.line.Detail, "applied 1: 0001_items.sql") {
		t.Fatalf("1.0: %+v", out)
	}
	out = apply("1.0", "1.1", reg("migrations/0001_items.sql", m1), reg("migrations/0002_price.sql", m2))
	if out.failed || out.o["schema_before"] != "1" || out.o["schema_after"] != "2" {
		t.Fatalf("1.1: %+v", out)
	}
	if got := query(t, url, "SELECT count(*)::text || ' ' || sum(price)::text FROM items"); got != "8 0" {
		t.Fatalf("items after 0002: %s", got)
	}
	h.calls()
	out = apply("1.1", "1.2", reg("migrations/0001_items.sql", m1), reg("migrations/0002_price.sql", m2), reg("migrations/0003_bad.sql", bad))
	if !out.failed || out.reason != deploy.ReasonMigrateFailed || out.line.OK || !strings.Contains(out.err, "no_such_function") ||
		out.o["schema_before"] != "2" || out.o["schema_after"] != "2" || strings.Contains(out.err, url) {
		t.Fatalf("1.2: %+v", out)
	}
	// goose rolled the failed migration back; the previous release runs.
	if got := query(t, url, "SELECT count(*)::text FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'stock'"); got != "0" {
		t.Fatalf("the failed migration's column is there: %s", got)
	}
	if h.current() != "releases/1.1" || !strings.Contains(strings.Join(h.calls(), "; "), "start 1.1") {
		t.Fatalf("current %s", h.current())
	}
}

// A release that ships migrations to a target that declares no database
// fails rather than leave the schema behind the code.
func TestMigrationsWithoutADatabaseFail(t *testing.T) {
	t.Parallel()
	h := newHost(t, 0)
	u, digest := h.pack("app-1.0", migrations("1.0", reg("migrations/0001_items.sql", m1)))
	out, _ := h.run(command(events.ActionApply, "", "1.0", u, digest))
	if !out.Failed || out.Reason != deploy.ReasonMigrateFailed || !strings.Contains(out.Error, "names no database") {
		t.Fatalf("outcome %+v", out)
	}
}
