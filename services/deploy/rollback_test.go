package deploy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/services/deploy"
)

func TestRollbackToThePreviousReleaseAndAgain(t *testing.T) {
	h := newHost(t, 0)
	h.installed("1.0", "1.1")
	out := h.rollback("1.0", "1.1")
	if out.Failed || out.Output["current"] != "1.0" || out.Output["rolled_back_from"] != "1.1" {
		t.Fatalf("outcome %+v", out)
	}
	if got := strings.Join(h.calls(), "; "); got != "stop 1.0 current=releases/1.1; start 1.0 current=releases/1.0" {
		t.Fatalf("hook calls: %s", got)
	}
	if h.current() != "releases/1.0" {
		t.Fatalf("current -> %q", h.current())
	}
	again := h.rollback("1.0", "1.1")
	if again.Failed || again.Output["unchanged"] != "true" || h.calls() != nil {
		t.Fatalf("second rollback %+v", again)
	}
}

func TestRollbackWhenAlreadyCurrentRunsNoHooks(t *testing.T) {
	h := newHost(t, 0)
	h.installed("1.0")
	// The compensation of an apply of 1.1 that never ran.
	out := h.rollback("1.0", "1.1")
	if out.Failed || out.Output["unchanged"] != "true" || out.Output["current"] != "1.0" {
		t.Fatalf("outcome %+v", out)
	}
	if calls := h.calls(); calls != nil {
		t.Fatalf("hooks ran: %v", calls)
	}
}

func TestRollbackWithoutThePreviousReleaseFails(t *testing.T) {
	h := newHost(t, 0)
	h.installed("1.1")
	for _, from := range []string{"1.0", ""} {
		out := h.rollback(from, "1.1")
		if !out.Failed || out.Reason != deploy.ReasonNoPreviousRelease {
			t.Fatalf("from %q: outcome %+v", from, out)
		}
	}
	if h.current() != "releases/1.1" || h.calls() != nil {
		t.Fatalf("touched: current -> %q", h.current())
	}
}

// An apply interrupted between stopping the old release and starting the
// new one (the service killed, or shut down past its grace) leaves current
// unchanged and the application down: the rollback must start it again.
func TestRollbackStartsWhatAnInterruptedApplyStopped(t *testing.T) {
	h := newHost(t, 0)
	h.installed("1.0")
	must(t, os.WriteFile(filepath.Join(h.dir, "flags", "hang-migrate-1.1"), nil, 0o644))
	url, digest := h.pack("app-1.1", release("1.1"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancelled once the migration hangs, as a shutdown past its grace
	// does; a migration that never gets there fails the test below.
	go func() {
		defer cancel()
		for deadline := time.Now().Add(natstest.Patience); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(h.dir, "flags", "hung")); err == nil {
				return
			}
		}
	}()
	if _, err := h.exec.Execute(ctx, command(events.ActionApply, "1.0", "1.1", url, digest), func(string) {}); err == nil {
		t.Fatal("an interrupted apply reported an outcome")
	}
	if got := strings.Join(h.calls(), "; "); got != "stop 1.1 current=releases/1.0; migrate 1.1 current=releases/1.0" {
		t.Fatalf("hook calls: %s", got)
	}
	if got := read(t, filepath.Join(h.root, deploy.StoppedFile)); got != "1.0\n" {
		t.Fatalf("stopped mark %q", got)
	}

	// The saga rolls back (the redelivered apply came after its deadline).
	out := h.rollback("1.0", "1.1")
	if out.Failed || out.Output["current"] != "1.0" || out.Output["restarted"] != "1.0" {
		t.Fatalf("outcome %+v", out)
	}
	if got := strings.Join(h.calls(), "; "); got != "start 1.0 current=releases/1.0" {
		t.Fatalf("hook calls: %s", got)
	}
	if _, err := os.Stat(filepath.Join(h.root, deploy.StoppedFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the stopped mark is still there: %v", err)
	}
	// Done once: the same compensation again has nothing to do.
	if again := h.rollback("1.0", "1.1"); again.Failed || again.Output["restarted"] != "" || h.calls() != nil {
		t.Fatalf("second rollback %+v", again)
	}
}

// A completed apply, or one that recovered by itself, leaves no mark.
func TestApplyLeavesNoStoppedMark(t *testing.T) {
	h := newHost(t, 0)
	h.installed("1.0", "1.1")
	h.fail("start", "1.2")
	if out := h.apply("1.1", "1.2"); !out.Failed {
		t.Fatalf("apply with a failing start: %+v", out)
	}
	if _, err := os.Stat(filepath.Join(h.root, deploy.StoppedFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stopped mark after the apply: %v", err)
	}
}

// interruptedRollback runs the rollback from 1.1 to 1.0 and interrupts it
// in its start hook, after the stop and the switch: the service killed
// there leaves the application down with current already on 1.0.
func interruptedRollback(t *testing.T, h *host) {
	t.Helper()
	h.installed("1.0", "1.1")
	h.hang("start", "1.0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		defer cancel()
		for deadline := time.Now().Add(natstest.Patience); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(h.dir, "flags", "hung")); err == nil {
				return
			}
		}
	}()
	h.calls()
	if _, err := h.exec.Execute(ctx, command(events.ActionRollback, "1.0", "1.1", "", ""), func(string) {}); err == nil {
		t.Fatal("an interrupted rollback reported an outcome")
	}
	if got := strings.Join(h.calls(), "; "); got != "stop 1.0 current=releases/1.1; start 1.0 current=releases/1.0" {
		t.Fatalf("hook calls: %s", got)
	}
	must(t, os.Remove(filepath.Join(h.dir, "flags", "hang-start-1.0")))
}

// A rollback interrupted between its stop and its start (a kill there left
// the target dark for good: the redelivered rollback found current on the
// release to go back to and did nothing) leaves the stopped mark, so the rollback delivered again starts the
// release, and a restarted service starts it at once.
func TestARollbackInterruptedAfterItsStopIsStartedAgain(t *testing.T) {
	t.Run("redelivered", func(t *testing.T) {
		h := newHost(t, 0)
		interruptedRollback(t, h)
		out := h.rollback("1.0", "1.1")
		if out.Failed || out.Output["current"] != "1.0" || out.Output["restarted"] != "1.0" {
			t.Fatalf("outcome %+v", out)
		}
		if got := strings.Join(h.calls(), "; "); got != "start 1.0 current=releases/1.0" {
			t.Fatalf("hook calls: %s", got)
		}
		if _, err := os.Stat(filepath.Join(h.root, deploy.StoppedFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the stopped mark is still there: %v", err)
		}
	})
	t.Run("restarted", func(t *testing.T) {
		h := newHost(t, 0)
		interruptedRollback(t, h)
		if err := h.exec.Recover(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(h.calls(), "; "); got != "start 1.0 current=releases/1.0" {
			t.Fatalf("hook calls: %s", got)
		}
		// Then the redelivered rollback has nothing left to do.
		if out := h.rollback("1.0", "1.1"); out.Failed || out.Output["restarted"] != "" || h.calls() != nil {
			t.Fatalf("rollback after the recovery %+v, calls %v", out, h.calls())
		}
	})
}
