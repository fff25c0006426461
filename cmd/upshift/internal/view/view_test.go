package view_test

import (
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
