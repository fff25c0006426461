package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/services/deploy"
)

func TestFreshInstall(t *testing.T) {
	h := newHost(t, 0)
	url, digest := h.pack("app-1.0", release("1.0"))
	out, progress := h.run(command(events.ActionApply, "", "1.0", url, digest))
	if out.Failed {
		t.Fatalf("outcome %+v", out)
	}
	if h.current() != "releases/1.0" {
		t.Fatalf("current -> %q", h.current())
	}
	rel := filepath.Join(h.root, "releases", "1.0")
	if read(t, filepath.Join(rel, "VERSION")) != "1.0\n" || read(t, filepath.Join(rel, "bin", "run")) != "#!/bin/sh\necho 1.0\n" {
		t.Fatal("release content")
	}
	if m, err := deploy.ReadMarker(rel); err != nil || m.Digest != digest || !m.Good || m.InstalledAt.IsZero() {
		t.Fatalf("release marker %+v, %v", m, err)
	}
	if got := strings.Join(h.calls(), "; "); got != "migrate 1.0 current=; start 1.0 current=releases/1.0" {
		t.Fatalf("hook calls: %s", got)
	}
	if out.Output["previous"] != "" || out.Output["current"] != "1.0" || out.Output["release"] != rel {
		t.Fatalf("output %v", out.Output)
	}
	if got := names(out.Report); got != "stage=ok extract=ok stop=ok migrate=ok switch=ok start=ok cleanup=ok" {
		t.Fatalf("report %s", got)
	}
	if !strings.Contains(line(out.Report, "start").Detail, "start 1.0 ok") {
		t.Fatalf("start line lacks the hook's output: %q", line(out.Report, "start").Detail)
	}
	if len(progress) < 5 {
		t.Fatalf("progress %v", progress)
	}
}

func TestUpgradeStopsMigratesSwitchesStartsAndLinksShared(t *testing.T) {
	h := newHost(t, 0)
	h.installed("1.0")
	must(t, os.MkdirAll(filepath.Join(h.root, "shared"), 0o755))
	must(t, os.WriteFile(filepath.Join(h.root, "shared", "secret.env"), []byte("TOKEN=x\n"), 0o600))
	out := h.apply("1.0", "1.1")
	if out.Failed {
		t.Fatalf("outcome %+v", out)
	}
	want := "stop 1.1 current=releases/1.0; migrate 1.1 current=releases/1.0; start 1.1 current=releases/1.1"
	if got := strings.Join(h.calls(), "; "); got != want {
		t.Fatalf("hook calls:\n got %s\nwant %s", got, want)
	}
	if h.current() != "releases/1.1" || out.Output["previous"] != "1.0" || out.Output["current"] != "1.1" {
		t.Fatalf("current -> %q, output %v", h.current(), out.Output)
	}
	if read(t, filepath.Join(h.root, "current", "shared", "secret.env")) != "TOKEN=x\n" {
		t.Fatal("shared/ not linked into the release")
	}
}

func TestSameApplyTwiceReusesTheRelease(t *testing.T) {
	h := newHost(t, 0)
	h.installed("1.0")
	url, digest := h.pack("app-1.1", release("1.1"))
	cmd := command(events.ActionApply, "1.0", "1.1", url, digest)
	if out, _ := h.run(cmd); out.Failed {
		t.Fatalf("first: %+v", out)
	}
	// Left by the app: a re-extraction would lose it.
	must(t, os.WriteFile(filepath.Join(h.root, "releases", "1.1", "cache"), []byte("warm"), 0o644))
	must(t, os.Remove(strings.TrimPrefix(url, "file://"))) // the re-run must not need the package
	h.calls()
	out, _ := h.run(cmd)
	if out.Failed || out.Output["previous"] != "1.0" || out.Output["current"] != "1.1" {
		t.Fatalf("second: %+v", out)
	}
	if !strings.Contains(line(out.Report, "extract").Detail, "reused") {
		t.Fatalf("extract line %q", line(out.Report, "extract").Detail)
	}
	if read(t, filepath.Join(h.root, "releases", "1.1", "cache")) != "warm" {
		t.Fatal("release extracted again")
	}
	if got := strings.Join(h.calls(), "; "); got != "stop 1.1 current=releases/1.1; migrate 1.1 current=releases/1.1; start 1.1 current=releases/1.1" {
		t.Fatalf("hook calls: %s", got)
	}
}

func TestStartFailureSwitchesBackAndRestartsThePrevious(t *testing.T) {
	h := newHost(t, 0)
	h.installed("1.0")
	h.fail("start", "1.1")
	out := h.apply("1.0", "1.1")
	if !out.Failed || out.Reason != deploy.ReasonStartFailed {
		t.Fatalf("outcome %+v", out)
	}
	want := "stop 1.1 current=releases/1.0; migrate 1.1 current=releases/1.0; start 1.1 current=releases/1.1; start 1.0 current=releases/1.0"
	if got := strings.Join(h.calls(), "; "); got != want {
		t.Fatalf("hook calls:\n got %s\nwant %s", got, want)
	}
	if h.current() != "releases/1.0" || out.Output["current"] != "1.0" {
		t.Fatalf("current -> %q, output %v", h.current(), out.Output)
	}
	if got := names(out.Report); got != "stage=ok extract=ok stop=ok migrate=ok switch=ok start=FAIL switch back=ok restart=ok" {
		t.Fatalf("report %s", got)
	}
	if !strings.Contains(line(out.Report, "start").Detail, "cannot start 1.1") {
		t.Fatalf("start line lacks the hook's output: %q", line(out.Report, "start").Detail)
	}
}

func TestMigrateFailureRestartsThePreviousWithoutSwitching(t *testing.T) {
	h := newHost(t, 0)
	h.installed("1.0")
	h.fail("migrate", "1.1")
	out := h.apply("1.0", "1.1")
	if !out.Failed || out.Reason != deploy.ReasonMigrateFailed || h.current() != "releases/1.0" {
		t.Fatalf("outcome %+v, current -> %q", out, h.current())
	}
	want := "stop 1.1 current=releases/1.0; migrate 1.1 current=releases/1.0; start 1.0 current=releases/1.0"
	if got := strings.Join(h.calls(), "; "); got != want {
		t.Fatalf("hook calls:\n got %s\nwant %s", got, want)
	}
}

func TestFreshInstallStartFailureIsReported(t *testing.T) {
	h := newHost(t, 0)
	h.fail("start", "1.0")
	out := h.apply("", "1.0")
	if !out.Failed || out.Reason != deploy.ReasonStartFailed {
		t.Fatalf("outcome %+v", out)
	}
	if got := strings.Join(h.calls(), "; "); got != "migrate 1.0 current=; start 1.0 current=releases/1.0" {
		t.Fatalf("hook calls: %s", got)
	}
	if l := line(out.Report, "restart"); l.OK || !strings.Contains(l.Detail, "fresh install") {
		t.Fatalf("restart line %+v", l)
	}
}

func TestArtifactProblemsFailBeforeAnythingIsTouched(t *testing.T) {
	h := newHost(t, 0)
	h.installed("1.0")
	url, _ := h.pack("app-1.1", release("1.1"))
	for _, c := range []struct{ name, url, digest, reason string }{
		{"digest mismatch", url, "sha256:" + strings.Repeat("0", 64), deploy.ReasonDigestMismatch},
		{"missing package", "file://" + filepath.Join(h.dir, "nope.tar.gz"), "sha256:" + strings.Repeat("0", 64), deploy.ReasonArtifactUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, _ := h.run(command(events.ActionApply, "1.0", "1.1", c.url, c.digest))
			if !out.Failed || out.Reason != c.reason {
				t.Fatalf("outcome %+v", out)
			}
			if h.current() != "releases/1.0" || strings.Join(h.releases(), " ") != "1.0" || h.calls() != nil {
				t.Fatalf("touched: current -> %q, releases %v", h.current(), h.releases())
			}
		})
	}
}

func TestConflictingReleaseDirIsLeftAlone(t *testing.T) {
	h := newHost(t, 0)
	h.installed("1.0")
	other := filepath.Join(h.root, "releases", "1.1")
	must(t, os.MkdirAll(other, 0o755))
	must(t, os.WriteFile(filepath.Join(other, "VERSION"), []byte("hand-made\n"), 0o644))
	out := h.apply("1.0", "1.1")
	if !out.Failed || out.Reason != deploy.ReasonReleaseConflict {
		t.Fatalf("outcome %+v", out)
	}
	if read(t, filepath.Join(other, "VERSION")) != "hand-made\n" || h.current() != "releases/1.0" || h.calls() != nil {
		t.Fatal("the conflicting release or the target was touched")
	}
	// Another package under the same version, over one upshift installed.
	h2 := newHost(t, 0)
	h2.installed("1.0", "1.1")
	url, digest := h2.pack("app-1.1-rebuilt", append(release("1.1"), reg("extra", "x")))
	if out, _ := h2.run(command(events.ActionApply, "1.0", "1.1", url, digest)); out.Reason != deploy.ReasonReleaseConflict {
		t.Fatalf("rebuilt package: %+v", out)
	}
}

func TestCleanupKeepsCurrentAndPrevious(t *testing.T) {
	h := newHost(t, 2)
	h.installed("1.0", "1.1", "1.2")
	if got := strings.Join(h.releases(), " "); got != "1.1 1.2" {
		t.Fatalf("releases %s, want the 2 newest", got)
	}
	if out := h.rollback("1.1", "1.2"); out.Failed {
		t.Fatalf("rollback %+v", out)
	}
	// 1.2 is newer, but 1.3 replaces 1.1: that is the one to keep.
	out := h.apply("1.1", "1.3")
	if out.Failed {
		t.Fatalf("outcome %+v", out)
	}
	if got := strings.Join(h.releases(), " "); got != "1.1 1.3" {
		t.Fatalf("releases %s, want current and previous", got)
	}
	if d := line(out.Report, "cleanup").Detail; d != "keep 2; removed 1.2 (not good: 1.2, rolled back or never in service)" {
		t.Fatalf("cleanup line %q", d)
	}
}

func TestApplyWaitsForTheTargetLock(t *testing.T) {
	h := newHost(t, 0)
	must(t, os.MkdirAll(h.root, 0o755))
	f, err := os.OpenFile(filepath.Join(h.root, deploy.LockFile), os.O_CREATE|os.O_RDWR, 0o600)
	must(t, err)
	defer f.Close()
	must(t, syscall.Flock(int(f.Fd()), syscall.LOCK_EX))
	url, digest := h.pack("app-1.0", release("1.0"))
	cmd := command(events.ActionApply, "", "1.0", url, digest)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := h.exec.Execute(ctx, cmd, func(string) {}); err == nil {
		t.Fatal("executed while another process held the target's lock")
	}
	if h.releases() != nil || h.calls() != nil {
		t.Fatal("touched the target without its lock")
	}
	must(t, syscall.Flock(int(f.Fd()), syscall.LOCK_UN))
	if out, _ := h.run(cmd); out.Failed || h.current() != "releases/1.0" {
		t.Fatalf("after unlock: %+v", out)
	}
}
