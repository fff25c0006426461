package e2e_test

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/coordinator"
)

// maintenance is a Maintenance request of the demo's installed version.
func maintenance(r *rig, installed string, actions []string, purge ...string) spec.Request {
	req := r.d.Request(installed, "1.0")
	req.Kind, req.Spec.To, req.Spec.Artifact = spec.KindMaintenance, "", spec.Artifact{}
	req.Spec.Maintenance = &spec.Maintenance{Actions: actions, Purge: purge}
	req.Metadata.Name = "maintenance: " + strings.Join(actions, ", ")
	return req
}

// maintained runs a maintenance request to its end and returns the saga.
func (r *rig) maintained(req spec.Request, want saga.State) saga.Saga {
	r.t.Helper()
	id, end := r.run(req)
	if end.Kind != string(want) {
		r.t.Fatalf("saga %s (%v) ended %s: %s", id, req.Actions(), end.Kind, end.Reason)
	}
	v, err := r.s.Client.Get(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return v.Saga
}

// step returns the saga's step of phase and action on the demo target.
func step(s saga.Saga, phase events.Phase, action events.Action) (saga.Step, bool) {
	for _, st := range s.Steps {
		if st.Phase == phase && st.Action == action {
			return *st, true
		}
	}
	return saga.Step{}, false
}

func count(t *testing.T, url, q string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func withPurge(tg *targets.Target) {
	tg.Maintenance.Purge = []targets.PurgeRule{{Name: "old-orders", SQL: "DELETE FROM orders WHERE placed < date '2024-03-01'"}}
}

// reindex, analyze and vacuum: each a saga of its own, with no backup (they
// change no data), each leaving its mark in the database's catalogs; then
// a purge, backed up first, removes the rows its rule selects.
func TestMaintenanceOfTheDatabase(t *testing.T) {
	endToEnd(t)
	url := pgtest.Database(t)
	pgtest.Exec(t, url, appSchema)
	r := newRigWith(t, "1.1", coordinator.Policy{}, withDatabase(t, url), withPurge)
	node := `SELECT relfilenode::int FROM pg_class WHERE relname = 'orders_placed'`
	before := count(t, url, node)
	for _, c := range []struct {
		action, detail, check string
	}{
		{spec.ActionReindex, "2 tables, 4 indexes rebuilt", ""},
		{spec.ActionAnalyze, "2 tables analyzed", "SELECT count(*)::int FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL"},
		{spec.ActionVacuum, "2 tables vacuumed and analyzed", "SELECT count(*)::int FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL"},
	} {
		s := r.maintained(maintenance(r, "1.1", []string{c.action}), saga.StateSucceeded)
		if _, ok := step(s, events.Backup, events.ActionArchive); ok {
			t.Errorf("%s was backed up: it changes no data", c.action)
		}
		st, _ := step(s, events.Deploy, events.ActionMaintain)
		if l := reportLine(st.Report, c.action+" app"); !l.OK || !strings.Contains(l.Detail, c.detail) {
			t.Errorf("%s: %+v", c.action, l)
		}
		if c.check != "" && count(t, url, c.check) != 2 {
			t.Errorf("%s: the catalogs do not show it", c.action)
		}
	}
	if count(t, url, node) == before {
		t.Error("reindex did not rebuild orders_placed")
	}

	want := count(t, url, "SELECT count(*)::int FROM orders WHERE placed >= date '2024-03-01'")
	s := r.maintained(maintenance(r, "1.1", []string{spec.ActionPurge}, "old-orders"), saga.StateSucceeded)
	if b, ok := step(s, events.Backup, events.ActionArchive); !ok || b.Output["databases"] != "1" {
		t.Fatalf("a purge without a backup of the database: %+v", s.Steps)
	}
	st, _ := step(s, events.Deploy, events.ActionMaintain)
	removed := 3000 - want
	if got := count(t, url, "SELECT count(*)::int FROM orders"); got != want || st.Output["purged_rows"] != strconv.Itoa(removed) {
		t.Fatalf("%d orders left (want %d), purged_rows %q (want %d)", got, want, st.Output["purged_rows"], removed)
	}
}

// A purge whose verification then fails is undone by the restore: every
// row and the schema are back, checked by query.
func TestMaintenancePurgeRolledBackByTheRestore(t *testing.T) {
	endToEnd(t)
	url := pgtest.Database(t)
	pgtest.Exec(t, url, appSchema)
	r := newRigWith(t, "1.2", coordinator.Policy{}, withDatabase(t, url), withPurge) // 1.2 is unhealthy
	before := pgtest.Capture(t, url)
	s := r.maintained(maintenance(r, "1.2", []string{spec.ActionPurge}), saga.StateRolledBack)
	m, _ := step(s, events.Deploy, events.ActionMaintain)
	if m.Status != saga.StepSucceeded || m.Output["purged_rows"] == "0" {
		t.Fatalf("the purge did not run: %+v", m)
	}
	if st, ok := step(s, events.Backup, events.ActionRestore); !ok || st.Status != saga.StepSucceeded {
		t.Fatalf("no restore: %+v", s.Steps)
	}
	pgtest.Same(t, url, before)
}

// archive-logs moves old log files, compressed, to the archive and checks
// that the application still logs (the check's command restarts it, and it
// logs on start). When that check fails, the restore of the backup puts
// the files back where they were and empties the archive again.
func TestMaintenanceArchivesLogs(t *testing.T) {
	endToEnd(t)
	var root string
	r := newRigWith(t, "1.1", coordinator.Policy{}, func(tg *targets.Target) {
		root = tg.Root
		tg.Maintenance.Logs = &targets.LogMaintenance{Dirs: []string{"logs"}, Archive: "archive", OlderThanDays: 3,
			Check: targets.LogCheck{File: "logs/app.log", Within: targets.Duration{Duration: 3 * time.Second},
				Command: &targets.Hook{Command: []string{"sh", "-c", `[ -e logging-broken ] || exec ./ctl start`}}}}
	})
	logs := filepath.Join(root, "logs")
	old := time.Now().Add(-5 * 24 * time.Hour)
	for name, body := range map[string]string{"app.log.1": strings.Repeat("yesterday's line\n", 500), "app.log.2": "older\n"} {
		p := filepath.Join(logs, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(logs, "recent.log"), []byte("today\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree := logFiles(t, logs)

	// Logging broken: the check fails, the backup puts the logs back.
	if err := os.WriteFile(filepath.Join(root, "logging-broken"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := r.maintained(maintenance(r, "1.1", []string{spec.ActionArchiveLogs}), saga.StateRolledBack)
	if m, _ := step(s, events.Deploy, events.ActionMaintain); m.Reason != "logging_stopped" {
		t.Fatalf("maintain: %+v", m)
	}
	if got := logFiles(t, logs); got != tree {
		t.Fatalf("the logs after the roll-back:\n%s\nwant\n%s", got, tree)
	}
	if des, err := os.ReadDir(filepath.Join(root, "archive")); err != nil || len(des) != 0 {
		t.Fatalf("the archive after the roll-back: %v %v", des, err)
	}

	// Logging works: the old files are archived, the rest stay.
	if err := os.Remove(filepath.Join(root, "logging-broken")); err != nil {
		t.Fatal(err)
	}
	s = r.maintained(maintenance(r, "1.1", []string{spec.ActionArchiveLogs}), saga.StateSucceeded)
	m, _ := step(s, events.Deploy, events.ActionMaintain)
	if m.Output["archived_files"] != "2" || !reportLine(m.Report, "logging").OK {
		t.Fatalf("maintain: %+v", m)
	}
	f, err := os.Open(filepath.Join(root, "archive", "logs", "app.log.1.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(gz); err != nil || string(b) != strings.Repeat("yesterday's line\n", 500) {
		t.Fatalf("archived app.log.1: %d bytes, %v", len(b), err)
	}
	for name, want := range map[string]bool{"app.log": true, "recent.log": true, "app.log.1": false, "app.log.2": false} {
		if _, err := os.Stat(filepath.Join(logs, name)); (err == nil) != want {
			t.Errorf("logs/%s present %v, want %v", name, err == nil, want)
		}
	}
	if v := r.serving(); v != "1.1" {
		t.Fatalf("serving %s", v)
	}
}

// config-baseline records the configuration; config-drift then reports
// what changed since, in a saga that succeeds with the drift in its report.
func TestMaintenanceConfigDrift(t *testing.T) {
	endToEnd(t)
	var root string
	r := newRigWith(t, "1.1", coordinator.Policy{}, func(tg *targets.Target) {
		root = tg.Root
		tg.Maintenance.Config = &targets.ConfigFiles{Paths: []string{"conf"}}
	})
	conf := filepath.Join(root, "conf")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "app.ini"), []byte("workers = 4\nlog = info\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := r.maintained(maintenance(r, "1.1", []string{spec.ActionConfigBaseline}), saga.StateSucceeded)
	if m, _ := step(s, events.Deploy, events.ActionMaintain); m.Output["baseline_files"] != "1" {
		t.Fatalf("baseline: %+v", m)
	}
	if err := os.WriteFile(filepath.Join(conf, "app.ini"), []byte("workers = 8\nlog = info\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = r.maintained(maintenance(r, "1.1", []string{spec.ActionConfigDrift}), saga.StateSucceeded)
	m, _ := step(s, events.Deploy, events.ActionMaintain)
	if m.Output["drift"] != "1 changed, 0 added, 0 removed" || reportLine(m.Report, "config-drift").OK {
		t.Fatalf("drift: %+v", m)
	}
	if _, ok := step(s, events.Backup, events.ActionArchive); ok {
		t.Error("config-drift was backed up: it changes no data")
	}
	d, err := os.ReadFile(m.Output["drift_diff"])
	if err != nil || !strings.Contains(string(d), "-workers = 4\n+workers = 8\n") {
		t.Fatalf("diff %q: %v", d, err)
	}
}

// logFiles lists the files of dir but the live log, with their content's
// digest and mode.
func logFiles(t *testing.T, dir string) string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, de := range des {
		if de.Name() == "app.log" {
			continue
		}
		c, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := de.Info()
		fmt.Fprintf(&b, "%s %s %x\n", de.Name(), fi.Mode(), sha256.Sum256(c))
	}
	return b.String()
}
