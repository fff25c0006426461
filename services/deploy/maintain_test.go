package deploy_test

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/deploy"
)

// maintained sets the host's maintenance settings.
func (h *host) maintained(m targets.Maintenance) {
	h.t.Helper()
	tg, err := h.exec.Targets.Get("web-1")
	must(h.t, err)
	tg.Maintenance = m
	h.exec.Targets, err = targets.New(map[string]targets.Target{"web-1": tg}, h.dir)
	must(h.t, err)
}

// maintain runs a Maintenance request's actions on the host's target.
func (h *host) maintain(actions []string, purge ...string) phase.Outcome {
	h.t.Helper()
	o, err := h.exec.Execute(context.Background(), events.Command{Step: "m", Saga: "s-maint", Phase: events.Deploy,
		Action: events.ActionMaintain, Target: "web-1", Attempt: 1,
		Upgrade: events.Upgrade{Kind: string(spec.KindMaintenance), Software: "app", Actions: actions, Purge: purge}}, func(string) {})
	must(h.t, err)
	return o
}

const maintSchema = `
CREATE TABLE sessions (id int PRIMARY KEY, seen date NOT NULL);
CREATE INDEX sessions_seen ON sessions (seen);
CREATE TABLE audit (id int PRIMARY KEY, at date NOT NULL);
INSERT INTO sessions SELECT i, date '2024-01-01' + i FROM generate_series(1, 300) i;
INSERT INTO audit SELECT i, date '2024-01-01' + i FROM generate_series(1, 50) i;`

// reindex, analyze and vacuum act on every user table and say so: the
// indexes get new files, the tables' statistics show the analyze and the
// vacuum.
func TestMaintainReindexAnalyzeVacuum(t *testing.T) {
	t.Parallel()
	h := newHost(t, 0)
	url := withDatabase(h)
	h.maintained(targets.Maintenance{})
	execAll(t, url, maintSchema)
	node := `SELECT relfilenode::text FROM pg_class WHERE relname = 'sessions_seen'`
	before := query(t, url, node)
	o := h.maintain([]string{spec.ActionReindex, spec.ActionAnalyze, spec.ActionVacuum})
	if o.Failed {
		t.Fatalf("failed: %s %s", o.Reason, o.Error)
	}
	for name, want := range map[string]string{
		"reindex app": "2 tables, 3 indexes rebuilt in", "analyze app": "2 tables analyzed in", "vacuum app": "2 tables vacuumed and analyzed in",
	} {
		if l := line(o.Report, name); !l.OK || !strings.Contains(l.Detail, want) {
			t.Errorf("%s: %+v, want %q", name, l, want)
		}
	}
	if after := query(t, url, node); after == before {
		t.Errorf("the index was not rebuilt: relfilenode %s", after)
	}
	if n := query(t, url, `SELECT count(*)::text FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL AND last_vacuum IS NOT NULL`); n != "2" {
		t.Errorf("%s tables show both an analyze and a vacuum", n)
	}
}

// A purge runs the target's rules (those named, or all) and reports the
// rows each removed; a rule the target does not declare fails the step.
func TestMaintainPurge(t *testing.T) {
	t.Parallel()
	h := newHost(t, 0)
	url := withDatabase(h)
	h.maintained(targets.Maintenance{Purge: []targets.PurgeRule{
		{Name: "old-sessions", SQL: "DELETE FROM sessions WHERE seen < date '2024-03-01'"},
		{Name: "audit", SQL: "DELETE FROM audit WHERE id > 40"},
	}})
	execAll(t, url, maintSchema)
	o := h.maintain([]string{spec.ActionPurge}, "old-sessions")
	if o.Failed || o.Output["purged_rows"] != "59" || !strings.HasPrefix(line(o.Report, "purge old-sessions").Detail, "59 rows removed from database app") {
		t.Fatalf("%+v", o)
	}
	if n := query(t, url, "SELECT count(*)::text FROM audit"); n != "50" {
		t.Fatalf("a rule not named ran: %s audit rows left", n)
	}
	if o := h.maintain([]string{spec.ActionPurge}); o.Failed || o.Output["purged_rows"] != "10" {
		t.Fatalf("all rules: %+v", o)
	}
	if o := h.maintain([]string{spec.ActionPurge}, "everything"); !o.Failed || o.Reason != deploy.ReasonMaintenanceUnconfigured {
		t.Fatalf("unknown rule: %+v", o)
	}
}

// archive-logs moves old log files, compressed, to the archive, leaves the
// live log and recent files, and fails if logging does not write after.
func TestMaintainArchiveLogs(t *testing.T) {
	t.Parallel()
	h := newHost(t, 0)
	logs := filepath.Join(h.root, "logs")
	must(t, os.MkdirAll(logs, 0o755))
	old := time.Now().Add(-10 * 24 * time.Hour)
	write := func(name, body string, at time.Time) {
		p := filepath.Join(logs, name)
		must(t, os.WriteFile(p, []byte(body), 0o644))
		must(t, os.Chtimes(p, at, at))
	}
	write("app.log", "live\n", old) // old, but live: never archived
	write("app.log.1", strings.Repeat("old line\n", 1000), old)
	write("app.log.2", "recent\n", time.Now())
	writes := filepath.Join(h.dir, "writes")
	h.maintained(targets.Maintenance{Logs: &targets.LogMaintenance{Dirs: []string{"logs"}, Archive: "archive",
		Check: targets.LogCheck{File: "logs/app.log", Within: targets.Duration{Duration: time.Second},
			Command: &targets.Hook{Command: []string{"sh", "-c", `[ -e "$0" ] && echo reopened >> logs/app.log; true`, writes}}}}})

	must(t, os.WriteFile(writes, nil, 0o644))
	o := h.maintain([]string{spec.ActionArchiveLogs})
	if o.Failed || o.Output["archived_files"] != "1" || !line(o.Report, "logging").OK {
		t.Fatalf("%+v", o)
	}
	f, err := os.Open(filepath.Join(h.root, "archive", "logs", "app.log.1.gz"))
	must(t, err)
	gz, err := gzip.NewReader(f)
	must(t, err)
	b, err := io.ReadAll(gz)
	must(t, err)
	f.Close()
	if string(b) != strings.Repeat("old line\n", 1000) {
		t.Fatalf("archived content differs: %d bytes", len(b))
	}
	for name, want := range map[string]bool{"app.log": true, "app.log.1": false, "app.log.2": true} {
		if _, err := os.Stat(filepath.Join(logs, name)); (err == nil) != want {
			t.Errorf("%s present %v, want %v", name, err == nil, want)
		}
	}

	// The check's command no longer makes the application log.
	must(t, os.Remove(writes))
	write("app.log.3", "older\n", old)
	if o := h.maintain([]string{spec.ActionArchiveLogs}); !o.Failed || o.Reason != deploy.ReasonLoggingStopped {
		t.Fatalf("logging stopped, yet %+v", o)
	}
}

// config-drift compares with the baseline config-baseline recorded: it
// reports each file changed, added and removed, the diff stays on the host
// (only line counts in the report), and without a baseline it fails.
func TestMaintainConfigDrift(t *testing.T) {
	t.Parallel()
	h := newHost(t, 0)
	conf := filepath.Join(h.root, "shared", "config")
	must(t, os.MkdirAll(conf, 0o755))
	must(t, os.WriteFile(filepath.Join(conf, "app.ini"), []byte("a = 1\nb = 2\npassword = hunter2\nc = 3\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(conf, "gone.ini"), []byte("x\n"), 0o644))
	h.maintained(targets.Maintenance{Config: &targets.ConfigFiles{Paths: []string{"shared/config"}}})

	if o := h.maintain([]string{spec.ActionConfigDrift}); !o.Failed || o.Reason != deploy.ReasonNoBaseline {
		t.Fatalf("no baseline, yet %+v", o)
	}
	if o := h.maintain([]string{spec.ActionConfigBaseline, spec.ActionConfigDrift}); o.Failed || o.Output["drift"] != "0 changed, 0 added, 0 removed" || !line(o.Report, "config-drift").OK {
		t.Fatalf("just recorded: %+v", o)
	}
	if fi, err := os.Stat(filepath.Join(h.root, targets.DefaultBaselineFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("baseline: %v %v", fi, err)
	}
	must(t, os.WriteFile(filepath.Join(conf, "app.ini"), []byte("a = 1\nb = 2\npassword = swordfish\nc = 3\n"), 0o600))
	must(t, os.Remove(filepath.Join(conf, "gone.ini")))
	must(t, os.WriteFile(filepath.Join(conf, "new.ini"), []byte("y\n"), 0o644))
	o := h.maintain([]string{spec.ActionConfigDrift})
	if o.Failed || o.Output["drift"] != "1 changed, 1 added, 1 removed" || line(o.Report, "config-drift").OK {
		t.Fatalf("%+v", o)
	}
	if l := line(o.Report, "config shared/config/app.ini"); l.OK || !strings.Contains(l.Detail, "1 lines added and 1 removed") {
		t.Fatalf("%+v", l)
	}
	for _, l := range o.Report {
		if strings.Contains(l.Detail, "swordfish") || strings.Contains(l.Detail, "hunter2") {
			t.Fatalf("the report holds configuration content: %+v", l)
		}
	}
	d, err := os.ReadFile(o.Output["drift_diff"])
	must(t, err)
	for _, want := range []string{"--- baseline/shared/config/app.ini", "-password = hunter2\n+password = swordfish\n", " c = 3\n", "-x\n", "+y\n"} {
		if !strings.Contains(string(d), want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
	// Accepting the drift: a new baseline.
	if o := h.maintain([]string{spec.ActionConfigBaseline, spec.ActionConfigDrift}); o.Failed || o.Output["drift"] != "0 changed, 0 added, 0 removed" {
		t.Fatalf("after a new baseline: %+v", o)
	}
}

func execAll(t *testing.T, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	must(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), sql)
	must(t, err)
}
