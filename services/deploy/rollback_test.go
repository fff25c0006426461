package deploy_test

import (
	"strings"
	"testing"

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
