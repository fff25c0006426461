package coordinator_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/kvstore"
)

// A fleet larger than the KV store keeps in one message. On KV the request
// is refused at once, saying why. On PostgreSQL, which keeps a saga's steps
// in rows of their own, it runs: 300 targets in batches of 25%, 2% of a
// batch tolerated (one target of 75); two verifications of the third batch
// fail, the first heard set aside, the second rolling back the three batches
// deployed, and the fourth is never touched. Every step ran once. The
// saga hears from many targets at once, and its one coordinator applies
// their reports in turn, those that wait together: none loses a
// compare-and-set to another, and there are fewer writes than transitions.
func TestAFleetLargerThanTheKVStoreTakes(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		n := kvstore.MaxTargets + 100
		targets := make([]string, n)
		for i := range targets {
			targets[i] = fmt.Sprintf("host-%03d", i)
		}
		w := newWorldOn(t, open, targets...)
		kv := strings.HasSuffix(t.Name(), "/kv")
		var updates, loads atomic.Int64
		if !kv { // a wrapped store is not Sized
			w.wrap = func(s sagastore.Store) sagastore.Store { return counting{s, &updates, &loads} }
		}
		w.coordinator("c1")
		r := request("test", targets...)
		r.Spec.Rollout = spec.Rollout{BatchPercent: 25, MaxFailedPercent: 2}
		size := spec.PercentSize(n, 25)
		bad := []string{targets[2*size], targets[2*size+1]}
		for _, tg := range bad {
			w.on("verify.probe."+tg, "fail")
		}
		id := w.submit(r)
		if kv {
			e := w.refusal(id)
			if want := fmt.Sprintf("%d targets: this coordinator's store takes sagas of at most %d", n, kvstore.MaxTargets); !strings.Contains(e.Reason, want) {
				t.Fatalf("reason %q, want it to say %q", e.Reason, want)
			}
			return
		}
		s := w.wait(id, 3*time.Minute, saga.StateRolledBack)
		// The two failures are heard in either order: the first is set
		// aside, the second rolls back.
		if len(s.SetAside) != 1 || !slices.Contains(bad, s.SetAside[0]) {
			t.Fatalf("set aside %v, want one of %v", s.SetAside, bad)
		}
		if u := updates.Load(); u >= int64(s.Seq) {
			t.Errorf("%d writes for %d transitions: no inputs waiting for their turn were applied together", u, s.Seq)
		}
		if n := w.metric("upshift_coordinator_conflicts_total"); n != 0 {
			t.Errorf("%v conflicts: one coordinator's inputs of a saga lost compare-and-sets to each other", n)
		}
		t.Logf("%d transitions in %d writes, %d loads", s.Seq, updates.Load(), loads.Load())
		ran := w.executions()
		for step, times := range ran {
			if times != 1 {
				t.Errorf("step %s ran %d times", step, times)
			}
		}
		for i, tg := range targets {
			deployed := i < 3*size
			for _, a := range []string{"deploy.apply", "deploy.rollback", "backup.restore"} {
				_, did := ran[events.StepID(id, events.Phase(strings.Split(a, ".")[0]), events.Action(strings.Split(a, ".")[1]), tg, 1)]
				if did != deployed {
					t.Fatalf("%s: %s ran: %v, want %v", tg, a, did, deployed)
				}
			}
		}
	})
}

// counting counts a store's updates (writes of a saga that exists) and
// loads.
type counting struct {
	sagastore.Store
	updates, loads *atomic.Int64
}

func (c counting) Update(ctx context.Context, from sagastore.Record, s saga.Saga, ch sagastore.Change) (sagastore.Record, error) {
	c.updates.Add(1)
	return c.Store.Update(ctx, from, s, ch)
}

func (c counting) Load(ctx context.Context, id string) (sagastore.Record, error) {
	c.loads.Add(1)
	return c.Store.Load(ctx, id)
}

// An input that panics while it applies the inputs waiting behind it (a
// bug in a store's driver) leaves none of them waiting for ever, and takes
// none of them with it: the group is tried again one input at a time, each
// for itself, and the saga goes on. Here every write of more than one input
// panics, and no delivery fails.
func TestAPanicWhileApplyingAGroupLeavesNoInputWaiting(t *testing.T) {
	t.Parallel()
	w := newWorldOn(t, openKV, "a", "b", "c")
	var panicked atomic.Bool
	var updates atomic.Int64
	w.wrap = func(s sagastore.Store) sagastore.Store { return panicOnce{s, &panicked, &updates} }
	w.coordinator("c1")
	r := request("test", "a", "b", "c")
	r.Spec.Rollout.BatchSize = 3
	r.Spec.Timeouts.Precheck = sec(600) // far beyond the test's patience
	s := w.wait(w.submit(r), natstest.Patience, saga.StateSucceeded)
	if !panicked.Load() {
		t.Fatalf("no update applied more than one input, none panicked: saga %s", s.State)
	}
	if n := w.metric("upshift_consumer_messages_total", "consumer", "coordinator-results", "result", "retried"); n != 0 {
		t.Fatalf("%v reports retried: a panicking group failed inputs that apply alone", n)
	}
}

// panicOnce holds its first update a second, while the saga's other
// inputs come and wait for their turn, and panics in every update that
// applies more than one input: an input applying those waiting behind it.
type panicOnce struct {
	sagastore.Store
	done *atomic.Bool
	n    *atomic.Int64
}

func (p panicOnce) Update(ctx context.Context, from sagastore.Record, s saga.Saga, ch sagastore.Change) (sagastore.Record, error) {
	if p.n.Add(1) == 1 {
		time.Sleep(time.Second)
	}
	if s.Seq-from.Saga.Seq > 1 {
		p.done.Store(true)
		panic("a bug in the store's driver")
	}
	return p.Store.Update(ctx, from, s, ch)
}
