package coordinator_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// loadCount is a real store that counts its Loads and stored transitions.
type loadCount struct {
	sagastore.Store
	loads, updates atomic.Int64
}

func (l *loadCount) Load(ctx context.Context, id string) (sagastore.Record, error) {
	l.loads.Add(1)
	return l.Store.Load(ctx, id)
}

func (l *loadCount) Update(ctx context.Context, from sagastore.Record, s saga.Saga, ch sagastore.Change) (sagastore.Record, error) {
	rec, err := l.Store.Update(ctx, from, s, ch)
	if err == nil {
		l.updates.Add(1)
	}
	return rec, err
}

// An instance applies a saga's next input to the saga as it stored it
// last, without reading it again: one instance, one input at a time (two
// inputs of a saga at once conflict, and the loser reads the store), a
// saga is read for the request's check that it is new, and seldom after.
func TestNextInputAppliedToTheSagaStoredLast(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "t1")
		count := &loadCount{}
		w.wrap = func(s sagastore.Store) sagastore.Store { count.Store = s; return count }
		w.concurrency, w.marks = 1, time.Hour // a mark written alone changes the saga: read again
		w.coordinator("c0")
		const sagas = 3
		for range sagas {
			id := w.submit(request("test", "t1"))
			if s := w.wait(id, natstest.Patience); s.State != saga.StateSucceeded {
				t.Fatalf("saga %s: %s (%s)", id, s.State, s.Reason)
			}
		}
		loads, updates := count.loads.Load(), count.updates.Load()
		if updates < sagas*4 {
			t.Fatalf("%d transitions stored for %d sagas", updates, sagas)
		}
		// Some inputs do read the saga: a redelivery (an ack wait is short
		// here) is ignored only once the store says so.
		if loads > sagas+updates/4 {
			t.Fatalf("%d Loads for %d sagas and %d transitions: the saga is read again for its inputs", loads, sagas, updates)
		}
	})
}

// The saga an instance kept may be stale: another instance moved it on.
// An input the stale saga cannot place (the report of a step the other
// instance sent) is asked of the store again, not ignored. Here "another
// instance" is the test: it approves the saga in the store and sends the
// backup's command itself, unseen by the coordinator, which kept the saga
// awaiting approval.
func TestAStaleKeptSagaIsReadAgainBeforeAnInputIsIgnored(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "t1")
		w.policy = coordinator.Policy{ApprovalEnvironments: []string{"production"}, ApprovalTimeout: time.Hour}
		w.relay = time.Hour // nothing of the coordinator's publishes the test's outbox
		w.coordinator("c0")
		id := w.submit(request("production", "t1"))
		w.wait(id, natstest.Patience, saga.StateAwaitingApproval)

		ctx := context.Background()
		rec, err := w.store.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		next, eff := saga.Apply(rec.Saga, saga.Input{Kind: saga.InputApprove, At: time.Now(), Actor: "elsewhere"})
		if next.State != saga.StateBackingUp || len(eff.Commands) != 1 {
			t.Fatalf("approved: %s with %d commands", next.State, len(eff.Commands))
		}
		c := eff.Commands[0]
		env, err := events.New(c.Step, events.TypeCommand, "test", id, c.Attempt, time.Now(), c)
		if err != nil {
			t.Fatal(err)
		}
		m, err := bus.Encode(events.CommandSubject(c.Phase, c.Action, c.Target), env)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.store.Update(ctx, rec, next, sagastore.Change{Outbox: []bus.Message{m}}); err != nil {
			t.Fatal(err)
		}
		if err := bus.SendAll(ctx, w.js, []bus.Message{m}); err != nil {
			t.Fatal(err)
		}
		// The backup's report reaches the coordinator, whose saga awaits
		// approval and knows no backup step.
		if s := w.wait(id, natstest.Patience); s.State != saga.StateSucceeded {
			t.Fatalf("saga %s: %s (%s)", id, s.State, s.Reason)
		}
	})
}
