package coordinator_test

import (
	"context"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// Progress reports handled out of order leave the step with the newest
// one sent, by the time in its CloudEvent.
func TestAnOlderProgressReportDoesNotOverwriteANewerOne(t *testing.T) {
	t.Parallel()
	forEachStore(t, anOlderProgressReportDoesNotOverwriteANewerOne)
}

func anOlderProgressReportDoesNotOverwriteANewerOne(t *testing.T, open storeOpener) {
	w := newWorldOn(t, open, "a")
	w.on("precheck.check.a", "hang")
	w.coordinator("c1")
	id := w.submit(request("test", "a"))
	step := events.StepID(id, events.Precheck, events.ActionCheck, "a", 1)
	natstest.Eventually(t, natstest.Patience, "precheck running", func() bool {
		r, err := w.store.Load(context.Background(), id)
		if err != nil {
			return false
		}
		st, ok := r.Saga.Step(step)
		return ok && st.Status == saga.StepRunning
	})

	sent := time.Now()
	progress := func(n int, msg string, at time.Time) string {
		r := events.StepResult{Step: step, Saga: id, Phase: events.Precheck, Action: events.ActionCheck, Target: "a",
			Attempt: 1, Status: events.StatusProgress, Message: msg}
		env, err := events.New(events.ResultID(step, events.StatusProgress, n), events.TypeStep, "test", id, 1, at, r)
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.Publish(context.Background(), w.js, events.ResultSubject(id, events.Precheck, events.StatusProgress), env); err != nil {
			t.Fatal(err)
		}
		return env.ID
	}
	shows := func() saga.Step {
		r, err := w.store.Load(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := r.Saga.Step(step)
		return *st
	}
	progress(1001, "60%", sent.Add(time.Second))
	natstest.Eventually(t, natstest.Patience, "the newer report applied", func() bool { return shows().Progress == "60%" })
	older := progress(1000, "30%", sent)
	natstest.Eventually(t, natstest.Patience, "the older report handled", func() bool {
		h, err := w.store.History(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range h {
			if e.ID == string(sagastore.In)+"/"+older {
				return true
			}
		}
		return false
	})
	if st := shows(); st.Progress != "60%" || !st.HeartbeatAt.Equal(sent.Add(time.Second).UTC()) {
		t.Fatalf("step shows %q from %v, want the newer report's 60%% from %v", st.Progress, st.HeartbeatAt, sent.Add(time.Second).UTC())
	}
}
