package deploy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/services/deploy"
)

// firstInstall is a command of a first install of version to.
func firstInstall(action events.Action, to, url, digest string) events.Command {
	c := command(action, "", to, url, digest)
	c.Upgrade.Kind = "Install"
	return c
}

// install runs a first install of release(to) and, if rollBack, its
// compensation.
func (h *host) install(to string, rollBack bool) (apply, rollback phase.Outcome) {
	h.t.Helper()
	url, digest := h.pack("app-"+to, release(to))
	apply, _ = h.run(firstInstall(events.ActionApply, to, url, digest))
	if rollBack {
		rollback, _ = h.run(firstInstall(events.ActionRollback, to, url, digest))
	}
	return apply, rollback
}

func TestTheRollBackOfAFirstInstallLeavesTheTargetEmpty(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fail  string // the hook of 1.0 that fails, if any
		calls string // the hook calls of the apply and its roll-back
	}{
		{"after it succeeded", "", "migrate 1.0 current=; start 1.0 current=releases/1.0; stop 1.0 current=releases/1.0"},
		{"after its start failed", "start", "migrate 1.0 current=; start 1.0 current=releases/1.0; stop 1.0 current=releases/1.0"},
		{"after its migration failed", "migrate", "migrate 1.0 current="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHost(t, 0)
			if tc.fail != "" {
				h.fail(tc.fail, "1.0")
			}
			apply, back := h.install("1.0", true)
			if apply.Failed != (tc.fail != "") || back.Failed {
				t.Fatalf("apply %+v\nrollback %+v", apply, back)
			}
			if got := strings.Join(h.calls(), "; "); got != tc.calls {
				t.Fatalf("hook calls:\n got %s\nwant %s", got, tc.calls)
			}
			if h.current() != "" || h.releases() != nil {
				t.Fatalf("current -> %q, releases %v: not empty", h.current(), h.releases())
			}
			if back.Output["current"] != "" {
				t.Fatalf("output %v", back.Output)
			}
			// Empty again, it takes a first install again.
			if apply, _ := h.install("1.0", false); !apply.Failed && h.current() != "releases/1.0" {
				t.Fatalf("install again: %+v, current -> %q", apply, h.current())
			}
		})
	}
}

func TestAFirstInstallLeavesWhatItDidNotPutThere(t *testing.T) {
	t.Parallel()
	h := newHost(t, 0)
	h.installed("0.9")
	url, digest := h.pack("app-1.0", release("1.0"))
	out, _ := h.run(firstInstall(events.ActionApply, "1.0", url, digest))
	if !out.Failed || out.Reason != deploy.ReasonNotEmpty || !strings.Contains(out.Error, "release 0.9 in service") {
		t.Fatalf("outcome %+v", out)
	}
	back, _ := h.run(firstInstall(events.ActionRollback, "1.0", url, digest))
	if back.Failed || back.Output["unchanged"] != "true" {
		t.Fatalf("rollback %+v", back)
	}
	if h.current() != "releases/0.9" || strings.Join(h.releases(), " ") != "0.9" || h.calls() != nil {
		t.Fatalf("touched: current -> %q, releases %v, calls %v", h.current(), h.releases(), h.calls())
	}

	// A release directory of the same version that another package made is
	// not this install's to remove.
	h2 := newHost(t, 0)
	h2.installed("1.0")
	must(t, os.Remove(filepath.Join(h2.root, "current")))
	url, digest = h2.pack("app-1.0-rebuilt", append(release("1.0"), reg("extra", "x")))
	back, _ = h2.run(firstInstall(events.ActionRollback, "1.0", url, digest))
	if back.Failed || !strings.Contains(line(back.Report, "remove").Detail, "holds another package") ||
		strings.Join(h2.releases(), " ") != "1.0" {
		t.Fatalf("rollback %+v, releases %v", back, h2.releases())
	}
}

func TestABrokenReleaseNeverPushesOutTheLastGoodOne(t *testing.T) {
	t.Parallel()
	h := newHost(t, 3)
	h.installed("1.0", "1.1")
	h.fail("start", "1.2")
	if out := h.apply("1.1", "1.2"); !out.Failed {
		t.Fatalf("1.2: %+v", out)
	}
	// 1.2 is the newest, but it never ran: 1.0, the last good one besides
	// 1.1, is the one to keep.
	out := h.apply("1.1", "1.3")
	if out.Failed {
		t.Fatalf("1.3: %+v", out)
	}
	if got := strings.Join(h.releases(), " "); got != "1.0 1.1 1.3" {
		t.Fatalf("releases %s, want 1.0 1.1 1.3", got)
	}
	if d := line(out.Report, "cleanup").Detail; d != "keep 3; removed 1.2 (not good: 1.2, rolled back or never in service)" {
		t.Fatalf("cleanup line %q", d)
	}
}

func TestTheCleanupLeavesAReleaseUpshiftDidNotInstall(t *testing.T) {
	t.Parallel()
	h := newHost(t, 1)
	must(t, os.MkdirAll(filepath.Join(h.root, "releases", "0.9", "bin"), 0o755))
	h.installed("1.0", "1.1")
	if got := strings.Join(h.releases(), " "); got != "0.9 1.0 1.1" {
		t.Fatalf("releases %s", got)
	}
	out := h.apply("1.1", "1.2")
	if got := strings.Join(h.releases(), " "); got != "0.9 1.1 1.2" {
		t.Fatalf("releases %s", got)
	}
	if d := line(out.Report, "cleanup").Detail; !strings.Contains(d, "removed 1.0; left 0.9: no release marker") {
		t.Fatalf("cleanup line %q", d)
	}
}

// The service does not trust that a command's request was validated: a
// version that is not one plain directory name never reaches the disk.
func TestAVersionThatIsNotAPlainNameIsRefused(t *testing.T) {
	t.Parallel()
	h := newHost(t, 0)
	h.installed("1.0")
	url, digest := h.pack("app-1.1", release("1.1"))
	for _, v := range []string{"", ".", "..", ".hidden", "a/b", "../x", `a\b`, "a\x00b"} {
		for _, c := range []events.Command{
			command(events.ActionApply, "1.0", v, url, digest),
			command(events.ActionApply, v, "1.1", url, digest),
			command(events.ActionRollback, v, "1.1", "", ""),
			firstInstall(events.ActionRollback, v, url, digest),
		} {
			if v == "" && c.Upgrade.From == "" && c.Upgrade.To == "1.1" {
				continue // no from: a fresh install, or nothing to roll back to
			}
			c.Step += "-" + v
			out, _ := h.run(c)
			if !out.Failed || out.Reason != deploy.ReasonInvalidVersion {
				t.Errorf("%s from %q to %q: %+v", c.Action, c.Upgrade.From, c.Upgrade.To, out)
			}
		}
	}
	if h.current() != "releases/1.0" || strings.Join(h.releases(), " ") != "1.0" || h.calls() != nil {
		t.Fatalf("touched: current -> %q, releases %v", h.current(), h.releases())
	}
}
