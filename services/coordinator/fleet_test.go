package coordinator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// fleetTargets are served by the phase services of a fleet test; "bad"
// ones fail verification. A service runs one command per target at a time
// (a roll-back must not overtake its apply), so the sagas are spread over
// several targets and given time-outs that allow for queueing.
var fleetTargets = []string{"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "bad0", "bad1"}

// fleet runs three coordinators over one store and n sagas, a third of them
// failing verification, and checks that every saga ends as it should and
// that every step was executed exactly once.
func fleet(t *testing.T, w *world, n int) {
	for i := range 3 {
		w.coordinator(fmt.Sprintf("c%d", i))
	}
	want := submitFleet(w, n)
	// Listing reads every saga: poll gently, not to be the load measured.
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(250 * time.Millisecond) {
		active, err := w.store.List(context.Background(), sagastore.Filter{Active: true, Limit: n + 1})
		if err == nil && len(active) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sagas still running after 3 minutes", len(active))
		}
	}
	for id, outcome := range want {
		r, err := w.store.Load(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Saga.State != outcome {
			t.Errorf("saga %s ended %s (%s), want %s", id, r.Saga.State, r.Saga.Reason, outcome)
		}
		for _, st := range r.Saga.Steps {
			if n := w.executions()[st.ID]; n != 1 {
				t.Errorf("step %s executed %d times", st.ID, n)
			}
		}
	}
	// Every execution belongs to a step of one of these sagas.
	steps := 0
	for id := range want {
		r, _ := w.store.Load(context.Background(), id)
		steps += len(r.Saga.Steps)
	}
	if got := len(w.executions()); got != steps {
		t.Errorf("%d steps executed, the sagas have %d", got, steps)
	}
	t.Logf("%d sagas, %d steps, %v compare-and-set conflicts resolved", n, steps, w.metric("upshift_coordinator_conflicts_total"))
}

func TestThreeCoordinators(t *testing.T) {
	if testing.Short() {
		t.Skip("long: a few hundred sagas on each store")
	}
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		// PostgreSQL, the store of a real fleet, gets the most.
		n := 200
		if strings.HasSuffix(t.Name(), "/postgres") {
			n = 300
		}
		fleet(t, newWorldOn(t, open, fleetTargets...), n)
	})
}
