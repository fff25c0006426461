package view_test

import (
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/cmd/upshift/internal/view"
	"github.com/upshift/upshift/pkg/events"
)

// feed gives p an event of type typ at t0+at.
func feed(t *testing.T, p *view.Progress, typ string, at time.Duration, data any) {
	t.Helper()
	env, err := events.New("e"+at.String(), typ, "test", "s1", 0, t0.Add(at), data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := events.Encode(env)
	if err != nil {
		t.Fatal(err)
	}
	p.Add(b)
}

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func state(kind string, batch, batches int, reason string) events.SagaEvent {
	return events.SagaEvent{Saga: "s1", Kind: kind, State: kind, Batch: batch, Batches: batches, Reason: reason}
}

func step(id, phase string, status events.Status, target string) events.StepResult {
	r := events.StepResult{Step: id, Saga: "s1", Phase: events.Phase(phase), Action: "apply", Target: target, Status: status}
	if status == events.StatusFailed {
		r.Reason, r.Error = "start_failed", "hook failed: exit status 1"
	}
	return r
}

// A frame has a row per phase and batch: the finished ones with their
// duration, the running one with its bar, steps and spinner, the failed one
// with its reason, and the outcome.
func TestProgressFrame(t *testing.T) {
	var p view.Progress
	feed(t, &p, events.TypeSaga, 0, state("prechecking", 0, 0, ""))
	feed(t, &p, events.TypeStep, time.Second, step("a", "precheck", events.StatusStarted, "web-1"))
	feed(t, &p, events.TypeStep, 2*time.Second, step("a", "precheck", events.StatusSucceeded, "web-1"))
	feed(t, &p, events.TypeSaga, 2500*time.Millisecond, state("deploying", 0, 2, ""))
	feed(t, &p, events.TypeStep, 3*time.Second, step("b", "deploy", events.StatusStarted, "web-1"))
	feed(t, &p, events.TypeStep, 3*time.Second, step("c", "deploy", events.StatusStarted, "web-2"))
	feed(t, &p, events.TypeStep, 4*time.Second, step("b", "deploy", events.StatusSucceeded, "web-1"))

	got := strings.Join(p.Frame(t0.Add(10*time.Second), 1), "\n")
	want := strings.Join([]string{
		"ok   prechecking            [####################] 1/1  2.5s",
		"/    deploying batch 1/2    [##########..........] 1/2  8s",
	}, "\n")
	if got != want {
		t.Fatalf("running frame:\n%s\nwant:\n%s", got, want)
	}

	feed(t, &p, events.TypeStep, 5*time.Second, step("c", "deploy", events.StatusFailed, "web-2"))
	feed(t, &p, events.TypeSaga, 5*time.Second, state(events.KindStepFailed, 0, 2, "deploy apply on web-2 failed"))
	feed(t, &p, events.TypeSaga, 6*time.Second, state("rolling_back", 0, 2, ""))
	feed(t, &p, events.TypeSaga, 9*time.Second, state("rolled_back", 0, 2, "deploy apply on web-2: start_failed"))
	got = strings.Join(p.Frame(t0.Add(20*time.Second), 2), "\n")
	want = strings.Join([]string{
		"ok   prechecking            [####################] 1/1  2.5s",
		"FAIL deploying batch 1/2    [####################] 2/2  3.5s  deploy apply web-2: start_failed: hook failed: exit status 1",
		"ok   rolling back           [....................] 0/0  3s",
		"=> ROLLED BACK: deploy apply on web-2: start_failed",
	}, "\n")
	if got != want {
		t.Fatalf("final frame:\n%s\nwant:\n%s", got, want)
	}
}

// Without a terminal, each change is one plain line: no spinner, no
// running clock, the outcome once.
func TestProgressChangesArePlainLines(t *testing.T) {
	var p view.Progress
	feed(t, &p, events.TypeSaga, 0, state("awaiting_approval", 0, 0, ""))
	if got := p.Changes(); len(got) != 1 || got[0] != "...  awaiting approval" {
		t.Fatalf("changes %q", got)
	}
	feed(t, &p, events.TypeSaga, time.Minute, state("backing_up", 0, 0, ""))
	feed(t, &p, events.TypeStep, time.Minute, step("a", "backup", events.StatusStarted, "web-1"))
	got := p.Changes()
	want := []string{"ok   awaiting approval       1m0s", "...  backing up             [....................] 0/1"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("changes %q, want %q", got, want)
	}
	feed(t, &p, events.TypeSaga, 2*time.Minute, state("cancelled", 0, 0, "cancelled by ann"))
	got = p.Changes()
	want = []string{"stop backing up             [....................] 0/1  1m0s", "=> CANCELLED: cancelled by ann"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("changes %q, want %q", got, want)
	}
	if got := p.Changes(); len(got) != 0 {
		t.Fatalf("again: %q", got)
	}
}

// A terminal frame replaces the last one: the cursor goes up over the
// lines drawn before, and each line is cleared before it is written.
func TestTerminalRedrawsInPlace(t *testing.T) {
	var b strings.Builder
	term := &view.Terminal{W: &b}
	term.Draw([]string{"a", "b"})
	term.Draw([]string{"a", "b", "c"})
	want := "\r\x1b[2Ka\n\r\x1b[2Kb\n" + "\x1b[2A\r\x1b[2Ka\n\r\x1b[2Kb\n\r\x1b[2Kc\n"
	if b.String() != want {
		t.Fatalf("drew %q, want %q", b.String(), want)
	}
}
