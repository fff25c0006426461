package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// errFlaky is the store answer a flakyStore loses.
var errFlaky = errors.New("store answer lost on purpose")

// flakyStore is a real store that loses answers: the first stored
// transition of the kind armed ("create"; or "end", the update that ends
// the saga, after which no input but a redelivered one comes) is written,
// but its caller gets the first error listed instead of the record, as when
// the store's reply is lost; the Loads that follow return the other errors
// listed, in turn. The input that caused the transition is then redelivered
// after its transition was stored but before its messages were published.
type flakyStore struct {
	sagastore.Store
	mu    sync.Mutex
	after string  // "create" or "end"; "" once fired
	fails []error // the write's error, then what the Loads after it return
	armed []error
}

func (f *flakyStore) Create(ctx context.Context, s saga.Saga, ch sagastore.Change) (sagastore.Record, error) {
	rec, err := f.Store.Create(ctx, s, ch)
	return rec, f.arm("create", err)
}

func (f *flakyStore) Update(ctx context.Context, from sagastore.Record, s saga.Saga, ch sagastore.Change) (sagastore.Record, error) {
	rec, err := f.Store.Update(ctx, from, s, ch)
	if s.State.Terminal() {
		err = f.arm("end", err)
	}
	return rec, err
}

// arm returns the error the caller of a write of kind gets: the first one
// listed once the write succeeded, the armed Loads' after it.
func (f *flakyStore) arm(kind string, err error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil && f.after == kind {
		f.armed, f.after = f.fails[1:], ""
		return f.fails[0]
	}
	return err
}

func (f *flakyStore) Load(ctx context.Context, id string) (sagastore.Record, error) {
	f.mu.Lock()
	var fail error
	if len(f.armed) > 0 {
		fail, f.armed = f.armed[0], f.armed[1:]
	}
	f.mu.Unlock()
	if fail != nil {
		return sagastore.Record{}, fail
	}
	return f.Store.Load(ctx, id)
}

// With the relay off (an hour between passes), only the coordinator's own
// flush publishes what a transition stored: after each stored transition,
// after a redelivered request whose saga exists, and after a redelivered
// input the saga ignores as a duplicate while it still has messages pending.
// Each saga must still succeed, and leave nothing pending.
func TestSagasProgressWithTheRelayOff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		failAfter string  // the stored transition whose answer is lost
		fails     []error // the error its caller gets, then the next reads', in turn
	}{
		{"flush after each stored transition", "", nil},
		{"flush a redelivered request that exists", "create", []error{errFlaky}},
		// The saga looks absent to the redelivered request's first read
		// (a lagging replica, or another instance creating it): creating
		// it again finds it exists.
		{"flush a redelivered request that is created again", "create", []error{errFlaky, sagastore.ErrNotFound}},
		// The last result is redelivered and ignored as a duplicate: only
		// its flush sends the saga's last events.
		{"flush on an ignored duplicate input", "end", []error{errFlaky}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			forEachStore(t, func(t *testing.T, open storeOpener) {
				w := newWorldOn(t, open, "a")
				flaky := &flakyStore{after: tc.failAfter, fails: tc.fails}
				w.wrap = func(s sagastore.Store) sagastore.Store { flaky.Store = s; return flaky }
				w.relay = time.Hour
				w.coordinator("c1")
				id := w.submit(request("test", "a"))
				s := w.wait(id, natstest.Patience)
				if s.State != saga.StateSucceeded {
					t.Fatalf("state %s: %s", s.State, s.Reason)
				}
				w.drained(id)
				flaky.mu.Lock()
				fired := flaky.after == "" && len(flaky.armed) == 0
				flaky.mu.Unlock()
				if !fired {
					t.Fatal("the store's answer was never lost: the redelivery was not tested")
				}
			})
		})
	}
}

// markCount is a real store that notes which message ids were marked sent
// by a change (Change.Sent) and which by a write of their own (Sent).
type markCount struct {
	sagastore.Store
	mu       sync.Mutex
	byChange map[string]int
	alone    map[string]int
}

func (m *markCount) Update(ctx context.Context, from sagastore.Record, s saga.Saga, ch sagastore.Change) (sagastore.Record, error) {
	rec, err := m.Store.Update(ctx, from, s, ch)
	if err == nil {
		m.note(m.byChange, ch.Sent)
	}
	return rec, err
}

func (m *markCount) Sent(ctx context.Context, rec sagastore.Record, ids []string) error {
	err := m.Store.Sent(ctx, rec, ids)
	if err == nil {
		m.note(m.alone, ids)
	}
	return err
}

func (m *markCount) note(into map[string]int, ids []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		into[id]++
	}
}

// A flush's mark of its messages as sent waits for the saga's next change
// and goes with it, rather than costing a write of its own; an ended
// saga's are marked at once, as no change is coming. With the relay off
// and marks never due: one input at a time, every command a saga sent is
// marked by the change that followed it, and its report never overtakes
// that (the flush publishing the command waits for its last ack after
// the report can be in). With inputs handled at once (started and
// succeeded reports race), commands may be marked alone, or twice (a
// flush of an input found ignored on a record read before another
// input's change marked them defers them again): harmless, and either way
// nothing stays pending once the saga ended.
func TestMarksGoWithTheNextChange(t *testing.T) {
	t.Parallel()
	for _, conc := range []int{1, 8} {
		t.Run(fmt.Sprintf("concurrency=%d", conc), func(t *testing.T) {
			t.Parallel()
			forEachStore(t, func(t *testing.T, open storeOpener) {
				w := newWorldOn(t, open, "t1")
				count := &markCount{byChange: map[string]int{}, alone: map[string]int{}}
				w.wrap = func(s sagastore.Store) sagastore.Store { count.Store = s; return count }
				w.relay, w.marks, w.concurrency = time.Hour, time.Hour, conc
				w.coordinator("c0")
				id := w.submit(request("test", "t1"))
				if s := w.wait(id, natstest.Patience); s.State != saga.StateSucceeded {
					t.Fatalf("saga %s: %s (%s)", id, s.State, s.Reason)
				}
				w.drained(id) // the relay is off: marked by the coordinator's flushes
				count.mu.Lock()
				defer count.mu.Unlock()
				commands := 0
				for step := range w.executions() {
					commands++
					if conc > 1 {
						continue // drained is the promise
					}
					if n := count.byChange[step] + count.alone[step]; n != 1 {
						t.Errorf("command %s marked %d times (%d by a change)", step, n, count.byChange[step])
					}
					if count.byChange[step] != 1 {
						t.Errorf("command %s marked alone, not by the change after it", step)
					}
				}
				if commands != 4 {
					t.Fatalf("%d commands executed, want 4", commands)
				}
			})
		})
	}
}
