package e2e_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/coordinator"
)

// tree lists every entry under root: path, mode, and a file's sha256 or a
// link's target.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		v := info.Mode().String()
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			dest, err := os.Readlink(path)
			if err != nil {
				return err
			}
			v += " -> " + dest
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			v += " " + hex.EncodeToString(sum[:])
		}
		out[path] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestADryRunChecksAndChangesNothing(t *testing.T) {
	endToEnd(t)
	r := newRig(t, "1.0")
	before := tree(t, r.d.Target.Root)
	req := r.d.Request("1.0", "1.1")
	req.Spec.DryRun = true
	id, end := r.run(req)
	r.expect(id, end, saga.StateChecked, "1.0")
	if got := r.phases(id); got != "precheck.check" {
		t.Fatalf("steps %s", got)
	}
	after := tree(t, r.d.Target.Root)
	for p, v := range before {
		if after[p] != v {
			t.Errorf("%s: %q, was %q", p, after[p], v)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: new", p)
		}
	}
}

func TestADryRunThatFailsAThresholdExitsNonZeroNamingTheCheck(t *testing.T) {
	endToEnd(t)
	bin := binaries(t)
	r := newRigWith(t, "1.0", coordinator.Policy{}, func(tg *targets.Target) { tg.Precheck.MinFreeDisk = 1 << 60 })
	b, err := yaml.Marshal(r.d.Request("1.0", "1.1"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "request.yaml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "upshift"), "submit", "-f", file, "--dry-run", "--json", "--nats", r.s.URL())
	out, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v\n%s", err, out)
	}
	var rep struct {
		State   string
		Reason  string
		Targets map[string][]events.ReportLine
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if rep.State != string(saga.StateFailed) || !strings.Contains(rep.Reason, "free disk") {
		t.Fatalf("report %+v", rep)
	}
	var disk events.ReportLine
	for _, l := range rep.Targets["demo"] {
		if l.Name == "free disk" {
			disk = l
		}
	}
	if disk.OK || disk.LineStatus() != events.CheckFail {
		t.Fatalf("free disk line %+v in %+v", disk, rep.Targets)
	}
	if cur, _ := r.d.Target.CurrentVersion(); cur != "1.0" {
		t.Fatalf("current is %s", cur)
	}
}
