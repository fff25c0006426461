package precheck_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/artifact"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/precheck"
)

// host makes a target root with version 1.0 installed and a package.
func host(t *testing.T, minFree string) (*precheck.Executor, string, string) {
	dir := t.TempDir()
	root := filepath.Join(dir, "web-1")
	os.MkdirAll(filepath.Join(root, "releases", "1.0"), 0o755)
	os.Symlink(filepath.Join(root, "releases", "1.0"), filepath.Join(root, "current"))
	pkg := filepath.Join(dir, "app-1.1.tar.gz")
	body := tgz(t, map[string]string{"VERSION": "1.1\n"})
	os.WriteFile(pkg, body, 0o644)
	sum := sha256.Sum256(body)
	reg, err := targets.Parse([]byte("targets: {web-1: {root: "+root+", precheck: {minFreeDisk: "+minFree+"}}}"), dir)
	if err != nil {
		t.Fatal(err)
	}
	return &precheck.Executor{Targets: reg, Artifacts: &artifact.Store{Dir: filepath.Join(dir, "store")}},
		"file://" + pkg, "sha256:" + hex.EncodeToString(sum[:])
}

func command(url, digest, from string) events.Command {
	return events.Command{Step: "s.precheck.check.web-1.1", Saga: "s", Phase: events.Precheck, Action: events.ActionCheck,
		Target: "web-1", Attempt: 1, Upgrade: events.Upgrade{Kind: "Upgrade", Software: "app", From: from, To: "1.1",
			Artifact: events.Artifact{URL: url, Digest: digest}}}
}

func lines(r []events.ReportLine) string {
	var out []string
	for _, l := range r {
		out = append(out, l.Name+"="+map[bool]string{true: "ok", false: "FAIL"}[l.OK])
	}
	return strings.Join(out, ", ")
}

func TestAllChecksPass(t *testing.T) {
	e, url, digest := host(t, "1MiB")
	out, err := e.Execute(context.Background(), command(url, digest, "1.0"), func(string) {})
	if err != nil || out.Failed {
		t.Fatalf("outcome %+v, err %v", out, err)
	}
	if lines(out.Report) != "artifact digest=ok, package safety=ok, free disk=ok, installed version=ok" {
		t.Fatalf("report %s", lines(out.Report))
	}
	if artifact.Verify(out.Output["artifact"], digest) != nil {
		t.Fatal("package not staged")
	}
}

func TestEachFailingCheckIsReportedAndTheOthersStillRun(t *testing.T) {
	e, url, _ := host(t, "1000TiB")
	out, err := e.Execute(context.Background(), command(url, "sha256:"+strings.Repeat("0", 64), "0.9"), func(string) {})
	if err != nil || !out.Failed || out.Reason != "check_failed" {
		t.Fatalf("outcome %+v, err %v", out, err)
	}
	if lines(out.Report) != "artifact digest=FAIL, free disk=FAIL, installed version=FAIL" {
		t.Fatalf("report %s", lines(out.Report))
	}
	for i, want := range []string{"digest mismatch", "need 1000.0TiB", `installed version is "1.0", the request upgrades from "0.9"`} {
		if !strings.Contains(out.Report[i].Detail, want) {
			t.Errorf("line %d: %q lacks %q", i, out.Report[i].Detail, want)
		}
	}
}

func TestUnknownTargetFails(t *testing.T) {
	e, url, digest := host(t, "1MiB")
	c := command(url, digest, "1.0")
	c.Target = "web-9"
	if out, _ := e.Execute(context.Background(), c, func(string) {}); !out.Failed || out.Reason != events.ReasonUnknown {
		t.Fatalf("outcome %+v", out)
	}
}

func TestAnInstallNeedsAnEmptyTarget(t *testing.T) {
	e, url, digest := host(t, "1MiB")
	install := func() phase.Outcome {
		t.Helper()
		c := command(url, digest, "")
		c.Upgrade.Kind = "Install"
		out, err := e.Execute(context.Background(), c, func(string) {})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := install()
	if l := line(t, out, "nothing installed"); !out.Failed || l.OK || !strings.Contains(l.Detail, "release 1.0 is installed and current") ||
		!strings.HasSuffix(lines(out.Report), "nothing installed=FAIL") {
		t.Fatalf("outcome %+v", out)
	}
	tgt, _ := e.Targets.Get("web-1")
	os.Remove(tgt.Current())
	out = install()
	if l := line(t, out, "nothing installed"); !out.Failed || !strings.Contains(l.Detail, "holds 1.0 though none is current") {
		t.Fatalf("outcome %+v", out)
	}
	os.RemoveAll(tgt.Releases())
	out = install()
	if l := line(t, out, "nothing installed"); out.Failed || !l.OK || strings.Contains(lines(out.Report), "installed version") {
		t.Fatalf("outcome %+v", out)
	}
}
