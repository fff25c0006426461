package coordinator_test

import (
	"context"
	"errors"
	"strings"
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

// A flush's mark of its messages as sent waits for the saga's next change
// and goes with it, rather than costing a write of its own. With the relay
// off and marks never due, every command a saga sent is marked by the
// change that followed it, and what the last change published is marked
// when the coordinator stops.
func TestMarksGoWithTheNextChange(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "t1")
		w.relay, w.marks = time.Hour, time.Hour
		_, stop := w.coordinator("c0")
		id := w.submit(request("test", "t1"))
		if s := w.wait(id, natstest.Patience); s.State != saga.StateSucceeded {
			t.Fatalf("saga %s: %s (%s)", id, s.State, s.Reason)
		}
		r, err := w.store.Load(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Pending) == 0 {
			t.Fatal("nothing pending: the last change's messages were marked at once")
		}
		for _, m := range r.Pending {
			if strings.HasPrefix(m.Subject, "upshift.cmd.") {
				t.Errorf("command %s still pending after the saga ended: its mark went with no change", m.ID)
			}
		}
		stop()
		r, err = w.store.Load(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Pending) != 0 {
			t.Fatalf("%d messages still pending after the coordinator stopped", len(r.Pending))
		}
	})
}
