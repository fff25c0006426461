package e2e_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upshift/upshift/cmd/upshift/internal/demo"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/hooks"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/targets"
)

func (r *rig) expect(id string, end events.SagaEvent, state saga.State, serving string) {
	r.t.Helper()
	if end.Kind != string(state) {
		r.t.Fatalf("saga %s ended %s (%s), want %s", id, end.Kind, end.Reason, state)
	}
	if v := r.serving(); v != serving {
		r.t.Fatalf("after saga %s the target serves %s, want %s", id, v, serving)
	}
}

// phases lists the phases of a saga's steps, in order, without repeats.
func (r *rig) phases(id string) string {
	r.t.Helper()
	v, err := r.s.Client.Get(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, st := range v.Saga.Steps {
		p := string(st.Phase) + "." + string(st.Action)
		if len(out) == 0 || out[len(out)-1] != p {
			out = append(out, p)
		}
	}
	return strings.Join(out, " ")
}

func TestAFirstInstallOnAnEmptyTargetThenAnUpgrade(t *testing.T) {
	endToEnd(t)
	r := newRig(t, "")
	id, end := r.run(r.d.Request("", "1.0"))
	r.expect(id, end, saga.StateSucceeded, "1.0")
	if got := r.phases(id); got != "precheck.check deploy.apply verify.probe" {
		t.Fatalf("steps %s: a first install has nothing to back up", got)
	}
	id, end = r.run(r.d.Request("1.0", "1.1"))
	r.expect(id, end, saga.StateSucceeded, "1.1")

	// An install on a target that is no longer empty is refused before
	// anything changes.
	id, end = r.run(r.d.Request("", "1.0"))
	if end.Kind != string(saga.StateFailed) || !strings.Contains(end.Reason, "nothing installed") {
		t.Fatalf("saga %s ended %s: %s", id, end.Kind, end.Reason)
	}
}

func TestAFailedFirstInstallLeavesTheTargetEmpty(t *testing.T) {
	endToEnd(t)
	r := newRig(t, "")
	id, end := r.run(r.d.Request("", "1.2"))
	if end.Kind != string(saga.StateRolledBack) || !strings.Contains(end.Reason, "verify probe on demo failed") {
		t.Fatalf("saga %s ended %s: %s", id, end.Kind, end.Reason)
	}
	if got := r.phases(id); got != "precheck.check deploy.apply verify.probe deploy.rollback" {
		t.Fatalf("steps %s", got)
	}
	if cur, err := r.d.Target.CurrentVersion(); cur != "" || err != nil {
		t.Fatalf("current is %q (%v)", cur, err)
	}
	if entries, err := os.ReadDir(r.d.Target.Releases()); len(entries) != 0 && err == nil {
		t.Fatalf("releases left: %v", entries)
	}
	if v, err := r.d.Serving(context.Background()); err == nil {
		t.Fatalf("the target still serves %s", v)
	}
	// Empty again, it takes the good release.
	id, end = r.run(r.d.Request("", "1.1"))
	r.expect(id, end, saga.StateSucceeded, "1.1")
}

func TestAnAdoptedInstallationIsUpgradedAndRolledBack(t *testing.T) {
	endToEnd(t)
	bin := binaries(t)
	r := newRig(t, "")
	// 1.0 installed by hand: unpacked with tar, linked, started.
	rel := r.d.Target.Release("1.0")
	if err := os.MkdirAll(rel, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xzf", r.d.Artifacts["1.0"].Path, "-C", rel).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	if err := os.Symlink(filepath.Join("releases", "1.0"), r.d.Target.Current()); err != nil {
		t.Fatal(err)
	}
	start := r.d.Target.Hooks.Start
	if res, err := hooks.Run(context.Background(), start.Command, r.d.Target.Root, r.d.Target.HookEnv(nil), start.Timeout.Duration); err != nil {
		t.Fatalf("start by hand: %v\n%s", err, res.Output)
	}
	if v := r.serving(); v != "1.0" {
		t.Fatalf("serving %s", v)
	}

	// upshift adopt, as the operator runs it on the host.
	b, _ := json.Marshal(targets.File{Targets: map[string]targets.Target{demo.TargetName: r.d.Target}})
	file := filepath.Join(t.TempDir(), "targets.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(bin, "upshift"), "adopt", demo.TargetName, "--version", "1.0", "--targets", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "adopted "+rel) {
		t.Fatalf("upshift adopt: %v\n%s", err, out)
	}

	id, end := r.run(r.d.Request("1.0", "1.2"))
	r.expect(id, end, saga.StateRolledBack, "1.0")
	id, end = r.run(r.d.Request("1.0", "1.1"))
	r.expect(id, end, saga.StateSucceeded, "1.1")
	// Back to 1.0 with its package: the adopted release, the same files.
	id, end = r.run(r.d.Request("1.1", "1.0"))
	r.expect(id, end, saga.StateSucceeded, "1.0")
	v, err := r.s.Client.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range v.Saga.Steps {
		if st.Phase == events.Deploy {
			if l := reportLine(st.Report, "extract"); !strings.Contains(l.Detail, "adopted earlier") {
				t.Fatalf("extract line %+v: the adopted release was not reused", l)
			}
		}
	}
}

func reportLine(r []events.ReportLine, name string) events.ReportLine {
	for _, l := range r {
		if l.Name == name {
			return l
		}
	}
	return events.ReportLine{}
}
