package coordinator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
)

// A saga waiting for the window of its second batch whose wake-up comes
// after that window closed, with the next one past its deadline, rolls back
// the first batch: the roll-back is counted as caused by the windows.
func TestRollBackFromAwaitingWindowIsCountedByItsCause(t *testing.T) {
	t.Parallel()
	forEachStore(t, rollBackFromAwaitingWindowIsCountedByItsCause)
}

func rollBackFromAwaitingWindowIsCountedByItsCause(t *testing.T, open storeOpener) {
	w := newWorldOn(t, open, "a", "b")
	// Far ahead of the real clock, so the wake-ups the saga schedules never
	// fire during the test: this test delivers them. The clock stays at
	// 12:15, so every report finds the 12:00-12:10 window closed.
	wed := time.Date(2099, 11, 25, 0, 0, 0, 0, time.UTC)
	w.clock = func() time.Time { return wed.Add(12*time.Hour + 15*time.Minute) }
	w.coordinator("c1")
	r := request("test", "a", "b")
	r.Spec.Rollout.BatchSize = 1
	r.Spec.Windows = []spec.Window{{Start: "12:00", End: "12:10"}}
	r.Spec.Deadline = wed.Add(24*time.Hour + 18*time.Hour) // Thursday 18:00
	id := w.submit(r)
	wake := func(n int, at time.Time) {
		w.publish(events.TimerFireSubject(id), id+"/test-timer/"+at.Format(time.RFC3339), events.TypeTimer,
			events.Timer{Saga: id, Due: at, N: n})
	}

	w.wait(id, natstest.Patience, saga.StateAwaitingWindow)
	wake(100, wed.Add(24*time.Hour+12*time.Hour)) // Thursday 12:00: batch a goes
	natstest.Eventually(t, natstest.Patience, "batch a verified, waiting for the window of b", func() bool {
		r, err := w.store.Load(context.Background(), id)
		return err == nil && r.Saga.State == saga.StateAwaitingWindow && verified(r.Saga, "a")
	})
	// The coordinator was down through Thursday's window; Friday's is past
	// the deadline.
	wake(101, wed.Add(24*time.Hour+12*time.Hour+30*time.Minute))
	s := w.wait(id, natstest.Patience)
	if s.State != saga.StateRolledBack || s.Previous != saga.StateRollingBack {
		t.Fatalf("state %s (%s), want rolled back", s.State, s.Reason)
	}
	if got := strings.Join(w.sagaEvents(id), " "); !strings.Contains(got, "awaiting_window rolling_back") {
		t.Fatalf("events %s, want a roll-back straight from awaiting_window", got)
	}
	if got := rollbacks(t, w); len(got) != 1 || got["window"] != 1 {
		t.Fatalf("upshift_rollbacks_total by reason %v, want window: 1", got)
	}
}

// verified reports whether the saga's verify of target succeeded.
func verified(s saga.Saga, target string) bool {
	for _, st := range s.Steps {
		if st.Phase == events.Verify && st.Target == target && st.Status == saga.StepSucceeded {
			return true
		}
	}
	return false
}

// rollbacks returns the roll-backs counted, by reason, leaving out zeros.
func rollbacks(t *testing.T, w *world) map[string]float64 {
	mfs, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "upshift_rollbacks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if v := m.GetCounter().GetValue(); v != 0 {
				for _, l := range m.GetLabel() {
					out[l.GetValue()] += v
				}
			}
		}
	}
	return out
}
