package e2e_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/coordinator"
)

// restoreByHand runs `upshift backups restore` and returns the saga it
// submitted and its exit code.
func restoreByHand(t *testing.T, r *rig, args ...string) (string, int) {
	t.Helper()
	args = append([]string{"backups", "restore"}, append(args, "--target", r.d.Target.Name,
		"--team", "platform", "--environment", "test", "--watch", "--nats", r.s.URL())...)
	out, err := exec.Command(filepath.Join(binaries(t), "upshift"), args...).CombinedOutput()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("upshift %v: %v\n%s", args, err, out)
	}
	m := regexp.MustCompile(`submitted (\S+): restore of demo-app from the backup of saga `).FindSubmatch(out)
	if m == nil {
		t.Fatalf("upshift %v: no saga submitted (exit %d):\n%s", args, code, out)
	}
	return string(m[1]), code
}

// After an upgrade from 1.0 to 1.1, an operator restores the backup the
// upgrade made of 1.0 by hand: the backed-up files and every database row
// are as they were at the backup, and the restore is a saga of its own, with
// its history, its safety backup and its notices. A restore naming a saga
// with no backup fails at precheck, and nothing is changed.
func TestARestoreByHandPutsAnUpgradesBackupBack(t *testing.T) {
	endToEnd(t)
	url := pgtest.Database(t)
	pgtest.Exec(t, url, appSchema)
	r := newRigWith(t, "1.0", coordinator.Policy{}, withDatabase(t, url),
		func(tg *targets.Target) { tg.Backup.Paths = []string{"shared"} })
	shared := filepath.Join(r.d.Target.Root, "shared")
	write := func(name, body string) {
		t.Helper()
		if err := os.MkdirAll(shared, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shared, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("app.conf", "mode=1.0\n")
	rows, files := pgtest.Capture(t, url), appTree(t, shared, "")

	up, end := r.run(r.d.Request("1.0", "1.1"))
	if end.Kind != string(saga.StateSucceeded) {
		t.Fatalf("upgrade %s ended %s: %s", up, end.Kind, end.Reason)
	}
	// Life goes on under 1.1: its configuration, rows deleted and changed.
	write("app.conf", "mode=1.1\n")
	write("extra.conf", "added under 1.1\n")
	pgtest.Exec(t, url, `DELETE FROM orders WHERE id > 1000; UPDATE customers SET tier = 'gold' WHERE id < 50;`)
	changed, changedFiles := pgtest.Capture(t, url), appTree(t, shared, "")

	// A saga with no backup: refused at precheck, nothing touched.
	none, code := restoreByHand(t, r, "no-such-saga", "--software", "demo-app")
	if code != 1 {
		t.Fatalf("restore of no backup: exit %d", code)
	}
	v, err := r.s.Client.Get(context.Background(), none)
	if err != nil {
		t.Fatal(err)
	}
	if v.Saga.State != saga.StateFailed || !strings.Contains(v.Saga.Reason, "backup check on demo failed") ||
		!strings.Contains(v.Saga.Reason, "nothing was changed") {
		t.Fatalf("saga %s %s: %s", none, v.Saga.State, v.Saga.Reason)
	}
	for _, st := range v.Saga.Steps {
		if st.Phase != events.Precheck && st.Action != events.ActionCheck {
			t.Fatalf("a restore of no backup went on to %s", st.ID)
		}
	}
	pgtest.Same(t, url, changed)
	if got := appTree(t, shared, ""); got != changedFiles {
		t.Fatalf("files changed by a refused restore:\n%s", got)
	}

	// The upgrade's backup, restored by hand: software read from its manifest.
	id, code := restoreByHand(t, r, up)
	if code != 0 {
		v, _ := r.s.Client.Get(context.Background(), id)
		t.Fatalf("restore %s: exit %d, %s: %s", id, code, v.Saga.State, v.Saga.Reason)
	}
	pgtest.Same(t, url, rows)
	if got := appTree(t, shared, ""); got != files {
		t.Fatalf("after the restore\n%s\nwant\n%s", got, files)
	}
	v, err = r.s.Client.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var walk []string
	for _, st := range v.Saga.Steps {
		walk = append(walk, string(st.Phase)+"."+string(st.Action))
	}
	if got := strings.Join(walk, " "); got != "precheck.check backup.check backup.archive backup.restore verify.probe" {
		t.Fatalf("steps %s", got)
	}
	if st := v.Saga.Steps[3]; st.Output["databases"] != "1" || !strings.Contains(st.Output["backup"], "/"+up+"/") {
		t.Fatalf("the restore step %+v", st)
	}
	history, err := r.s.Client.History(context.Background(), id)
	if err != nil || len(history) < 10 {
		t.Fatalf("history of %d entries: %v", len(history), err)
	}
	natstest.Eventually(t, natstest.Patience, "the teams told of the restore", func() bool {
		for _, n := range natstest.ReadEvents[events.Notice](t, r.s.JS, events.StreamNotify, "upshift.notify.*."+id+".>", events.TypeNotice) {
			if n.Kind == string(saga.StateSucceeded) && n.Event.Saga == id {
				return true
			}
		}
		return false
	})
}
