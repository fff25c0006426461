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
