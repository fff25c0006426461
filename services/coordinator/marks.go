package coordinator

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// DefaultMarkDelay is how long the mark of a flush's messages as sent
// waits for the saga's next input, which then writes it with its own
// change (sagastore.Change.Sent) rather than in a write of its own. The
// next input of a saga is mostly the report of a command just sent, well
// within this. Until the mark is written, the messages are pending in the
// store: the relay, or a flush by another instance, publishes them again
// (dropped as duplicates by their ids), as after a crash between
// publishing and marking.
const DefaultMarkDelay = 500 * time.Millisecond

// marks holds, per saga, the outbox messages published and not yet marked
// sent.
type marks struct {
	delay time.Duration
	mark  func(ctx context.Context, rec sagastore.Record, ids []string)

	mu      sync.Mutex
	ctx     context.Context // where deferred marks are written; nil: at once
	bySaga  map[string]*deferredMark
	running sync.WaitGroup // deferred marks being written
}

type deferredMark struct {
	ctx   context.Context
	rec   sagastore.Record
	ids   []string
	timer *time.Timer
}

// start lets marks be deferred; they are written in ctx, which should
// outlive the handlers (stop writes what is left).
func (m *marks) start(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ctx = ctx
	m.bySaga = map[string]*deferredMark{}
}

// later records that rec's messages ids were published: marked sent by the
// saga's next change if it comes within the delay, else then. Before start
// or after stop, or with no delay, they are marked at once.
func (m *marks) later(ctx context.Context, rec sagastore.Record, ids []string) {
	if len(ids) == 0 {
		return
	}
	m.mu.Lock()
	if m.ctx == nil || m.delay <= 0 {
		m.mu.Unlock()
		m.mark(ctx, rec, ids)
		return
	}
	id := rec.Saga.ID
	d := &deferredMark{ctx: m.ctx, rec: rec, ids: ids}
	if old := m.bySaga[id]; old != nil {
		// Another input's flush of the same saga, meanwhile. If its timer
		// fired, it waits for the lock and will find itself replaced.
		if old.timer.Stop() {
			m.running.Done()
		}
		d.ids = union(old.ids, ids)
		if old.rec.Revision > rec.Revision {
			d.rec = old.rec
		}
	}
	m.bySaga[id] = d
	m.running.Add(1)
	d.timer = time.AfterFunc(m.delay, func() {
		defer m.running.Done()
		m.mu.Lock()
		mine := m.bySaga[id] == d
		if mine {
			delete(m.bySaga, id)
		}
		m.mu.Unlock()
		if mine {
			m.mark(d.ctx, d.rec, d.ids)
		}
	})
	m.mu.Unlock()
}

// take returns the ids of saga id's messages published and not yet marked,
// and forgets them, with the record they were published from: the caller
// marks them, or gives them back (later). A mark already being written is
// not taken.
func (m *marks) take(id string) (sagastore.Record, []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.bySaga[id]
	if d == nil || !d.timer.Stop() {
		return sagastore.Record{}, nil
	}
	m.running.Done()
	delete(m.bySaga, id)
	return d.rec, d.ids
}

// stop writes every mark still deferred, waits for those being written,
// and has later mark at once from then on.
func (m *marks) stop() {
	m.mu.Lock()
	var now []*deferredMark
	for id, d := range m.bySaga {
		if d.timer.Stop() { // else its timer writes it
			m.running.Done()
			now = append(now, d)
			delete(m.bySaga, id)
		}
	}
	m.ctx = nil
	m.mu.Unlock()
	// Together, as their timers would have: one after another, a store
	// that does not answer would hold Run for markTimeout a saga.
	for _, d := range now {
		m.running.Go(func() { m.mark(d.ctx, d.rec, d.ids) })
	}
	m.running.Wait()
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}
