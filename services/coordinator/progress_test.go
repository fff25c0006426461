package coordinator_test

import (
	"context"
	"strings"
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

// A step whose command ran twice (its first run ended in an error and the
// command was delivered again) shows both runs, the first with its error,
// not only the second's report.
func TestAStepThatRanTwiceShowsBothRuns(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "a")
		w.on("deploy.apply.a", "error-once")
		w.coordinator("c1")
		id := w.submit(request("test", "a"))
		s := w.wait(id, natstest.Patience, saga.StateSucceeded)
		step := events.StepID(id, events.Deploy, events.ActionApply, "a", 1)
		if n := w.executions()[step]; n != 2 {
			t.Fatalf("apply executed %d times, want 2", n)
		}
		// The coordinator handles a saga's reports concurrently: those of
		// the first run may come after the saga ended, and still count.
		var st saga.Step
		natstest.Eventually(t, natstest.Patience, "both runs shown", func() bool {
			r, err := w.store.Load(context.Background(), id)
			if err != nil {
				return false
			}
			s = r.Saga
			got, _ := s.Step(step)
			st = *got
			return len(st.Runs) == 2 && st.Runs[0].Progress != ""
		})
		if st.Executions() != 2 {
			t.Fatalf("the step shows %d executions, runs %+v", st.Executions(), st.Runs)
		}
		if got := st.Runs[0].Progress; !strings.Contains(got, "run 1 ended in error") || !strings.Contains(got, "disk busy") {
			t.Errorf("the first run says %q, want its error", got)
		}
		if st.Runs[1].N <= st.Runs[0].N {
			t.Errorf("runs out of order: %+v", st.Runs)
		}
		for _, other := range s.Steps {
			if other.ID != step && other.Executions() != 1 {
				t.Errorf("%s shows %d executions, runs %+v", other.ID, other.Executions(), other.Runs)
			}
		}
	})
}
