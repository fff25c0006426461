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
	// busy holds, per saga, a channel closed when the flush publishing its
	// messages is done: a take waits for it, so the report of a command
	// that came back before its flush had the last ack (the phase services
	// are fast) still finds the command's mark to carry.
	busy map[string]chan struct{}
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
// not taken. If a flush of the saga is publishing, take waits until it is
// done, for at most the mark delay (then takes what is deferred without
// it), or until ctx is done (then takes nothing).
func (m *marks) take(ctx context.Context, id string) (sagastore.Record, []string) {
	rec, ids, _ := m.claim(ctx, id, false)
	return rec, ids
}

// publishing is take for a flush of saga id: it returns, besides, the
// function to call when the flush is done, with what it published to be
// marked later (nil if it marked or failed). Until then the saga's other
// takes and flushes wait.
func (m *marks) publishing(ctx context.Context, id string) ([]string, func(ctx context.Context, rec sagastore.Record, ids []string)) {
	_, ids, busy := m.claim(ctx, id, true)
	return ids, func(ctx context.Context, rec sagastore.Record, published []string) {
		m.later(ctx, rec, published)
		if busy != nil {
			m.mu.Lock()
			if m.busy[id] == busy { // else a flush that gave up waiting took over
				delete(m.busy, id)
			}
			m.mu.Unlock()
			close(busy)
		}
	}
}

// claim waits until no flush of saga id is publishing (for at most the
// mark delay: a slow flush does not hold the saga's next inputs longer
// than its mark would have waited for them), takes what is deferred, and,
// if flushing, marks the saga busy (returning its channel; nil if ctx was
// done first: the flush goes on unmarked).
func (m *marks) claim(ctx context.Context, id string, flushing bool) (sagastore.Record, []string, chan struct{}) {
	var giveUp <-chan time.Time // armed on the first wait: most claims wait for nothing
	m.mu.Lock()
wait:
	for m.busy[id] != nil {
		busy := m.busy[id]
		m.mu.Unlock()
		if giveUp == nil {
			patience := m.delay
			if patience <= 0 {
				patience = DefaultMarkDelay
			}
			t := time.NewTimer(patience)
			defer t.Stop()
			giveUp = t.C
		}
		select {
		case <-busy:
		case <-ctx.Done():
			return sagastore.Record{}, nil, nil
		case <-giveUp:
			m.mu.Lock()
			break wait // that flush's mark goes later, or with a later change
		}
		m.mu.Lock()
	}
	defer m.mu.Unlock()
	var busy chan struct{}
	if flushing {
		if m.busy == nil {
			m.busy = map[string]chan struct{}{}
		}
		busy = make(chan struct{})
		m.busy[id] = busy
	}
	d := m.bySaga[id]
	if d == nil || !d.timer.Stop() {
		return sagastore.Record{}, nil, busy
	}
	m.running.Done()
	delete(m.bySaga, id)
	return d.rec, d.ids, busy
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
