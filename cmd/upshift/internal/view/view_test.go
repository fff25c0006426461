package view_test

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/upshift/upshift/cmd/upshift/internal/view"
	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
)

// A failed step's line names its reason once, whether or not the service
// repeated the reason at the start of its error.
func TestAFailedStepSaysItsReasonOnce(t *testing.T) {
	for _, r := range []events.StepResult{
		{Phase: events.Deploy, Action: events.ActionApply, Target: "web", Status: events.StatusFailed,
			Reason: "start_failed", Error: "start_failed: hook failed: exit status 1"},
		{Phase: events.Deploy, Action: events.ActionApply, Target: "web", Status: events.StatusFailed,
			Reason: "start_failed", Error: "hook failed: exit status 1"},
	} {
		line := view.StepLine(r)
		if n := strings.Count(line, "start_failed"); n != 1 || !strings.HasSuffix(line, "start_failed: hook failed: exit status 1") {
			t.Errorf("%q: the reason %d times", line, n)
		}
	}
}

// Watch follows a saga as long as it lives: through a stretch with no event
// longer than a fetch's wait, and across a restart of the NATS server, and
// returns the event that ends it.
func TestWatchOutlastsSilenceAndARestart(t *testing.T) {
	if testing.Short() {
		t.Skip("long: more than a minute without an event")
	}
	t.Parallel()
	r := natstest.StartRestartable(t)
	js, ctx := r.JS, context.Background()
	publish := func(kind string) {
		e := events.SagaEvent{Saga: "s1", Kind: kind, State: kind}
		env, err := events.New("s1/"+kind, events.TypeSaga, "test", "s1", 0, time.Now(), e)
		if err == nil {
			err = bus.Publish(ctx, js, events.SagaSubject("s1", kind), env)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var printed atomic.Int32
	type result struct {
		e   events.SagaEvent
		err error
	}
	done := make(chan result, 1)
	go func() {
		e, err := view.Watch(ctx, js, "s1", func([]byte) { printed.Add(1) })
		done <- result{e, err}
	}()
	publish("prechecking")
	natstest.Eventually(t, natstest.Patience, "the first event printed", func() bool { return printed.Load() == 1 })

	r.Stop()
	r.Start()
	// A quiet phase: longer than a fetch waits for a message (30 s), and
	// than a minute.
	select {
	case r := <-done:
		t.Fatalf("watch gave up while the saga lives: %+v %v", r.e, r.err)
	case <-time.After(65 * time.Second):
	}
	publish("succeeded")
	select {
	case r := <-done:
		if r.err != nil || r.e.Kind != "succeeded" {
			t.Fatalf("watch ended with %+v %v", r.e, r.err)
		}
	case <-time.After(natstest.Patience):
		t.Fatal("watch did not see the saga end")
	}
}

// Junk on a saga's subject is shown as unreadable, in its place, and the
// watch goes on to the saga's end.
func TestJunkOnASagaSubjectIsShownAndTheWatchGoesOn(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t)
	ctx := context.Background()
	if _, err := js.Publish(ctx, events.SagaSubject("s1", "prechecking"), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	bad, _ := events.New("s1/junk", events.TypeSaga, "test", "s1", 0, time.Now(), map[string]any{"kind": 7})
	end, _ := events.New("s1/succeeded", events.TypeSaga, "test", "s1", 0, time.Now(),
		events.SagaEvent{Saga: "s1", Kind: "succeeded", State: "succeeded"})
	for _, env := range []events.Envelope{bad, end} {
		if err := bus.Publish(ctx, js, events.SagaSubject("s1", "x"), env); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	p := view.NewPrinter(&out)
	wctx, cancel := context.WithTimeout(ctx, natstest.Patience)
	defer cancel()
	e, err := view.Watch(wctx, js, "s1", p.Print)
	if err != nil || e.Kind != "succeeded" {
		t.Fatalf("watch: %+v %v", e, err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "unreadable event (9 bytes)") ||
		!strings.Contains(lines[1], "unreadable event s1/junk (io.upshift.saga.changed)") || !strings.Contains(lines[2], "SUCCEEDED") {
		t.Fatalf("printed:\n%s", out.String())
	}
}

// A step that ran twice says so in its line and lists each run with its
// last word; a step that ran once shows no runs.
func TestStatusShowsEachRunOfAStepThatRanAgain(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s := saga.Saga{ID: "s1", State: saga.StateSucceeded, Batches: [][]string{{"web"}}, Steps: []*saga.Step{
		{ID: "s1.deploy.apply.web.1", Phase: events.Deploy, Action: events.ActionApply, Target: "web", Attempt: 1,
			Status: saga.StepSucceeded, StartedAt: at, FinishedAt: at.Add(time.Minute), Run: 3, Runs: []saga.Run{
				{N: 1, StartedAt: at, Progress: "run 1 ended in error, to be tried again: disk busy"},
				{N: 3, StartedAt: at.Add(30 * time.Second), Progress: "starting"}}},
		{ID: "s1.verify.probe.web.1", Phase: events.Verify, Action: events.ActionProbe, Target: "web", Attempt: 1,
			Status: saga.StepSucceeded, StartedAt: at, FinishedAt: at.Add(time.Second), Run: 1},
	}}
	var b bytes.Buffer
	view.Status(&b, s)
	out := b.String()
	for _, want := range []string{"ran 2 times", "runs of deploy apply on web (attempt 1)",
		"run 1 (delivery 1) started", "disk busy", "run 2 (delivery 3) started", ": succeeded"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "runs of") != 1 {
		t.Errorf("runs shown for a step that ran once:\n%s", out)
	}
}
