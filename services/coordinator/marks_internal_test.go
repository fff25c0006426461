package coordinator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// Every id given to later is, once stop returns, either taken or marked,
// exactly once, whatever the timers, takers and stop do meanwhile.
func TestMarksEveryIDOnce(t *testing.T) {
	var mu sync.Mutex
	var given atomic.Int64
	got := map[string]int{}
	note := func(ids []string) {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			got[id]++
		}
	}
	m := &marks{delay: 200 * time.Microsecond, mark: func(_ context.Context, _ sagastore.Record, ids []string) { note(ids) }}
	m.start(context.Background())
	const sagas, rounds = 8, 2000
	var wg sync.WaitGroup
	for s := range sagas {
		for w := range 3 {
			wg.Go(func() {
				id := fmt.Sprintf("s%d", s)
				rec := sagastore.Record{Saga: saga.Saga{ID: id}}
				for i := range rounds {
					rec.Revision = sagastore.Revision(i)
					switch rand.IntN(4) {
					case 0, 1:
						given.Add(1)
						m.later(context.Background(), rec, []string{fmt.Sprintf("%s/%d/%d", id, w, i)})
					case 2: // a flush: takes, publishes, gives
						ids, done := m.publishing(context.Background(), id)
						note(ids)
						given.Add(1)
						done(context.Background(), rec, []string{fmt.Sprintf("%s/%d/%d", id, w, i)})
					default:
						_, ids := m.take(context.Background(), id)
						note(ids)
					}
					if rand.IntN(50) == 0 {
						time.Sleep(time.Duration(rand.IntN(400)) * time.Microsecond)
					}
				}
			})
		}
	}
	// Stopped while the others still give and take: later marks at once.
	stopped := make(chan struct{})
	go func() {
		time.Sleep(20 * time.Millisecond)
		m.stop()
		close(stopped)
	}()
	wg.Wait()
	<-stopped
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for id, c := range got {
		if c != 1 {
			t.Errorf("%s marked or taken %d times", id, c)
		}
		n++
	}
	if n != int(given.Load()) {
		t.Fatalf("%d ids taken or marked, %d given: some lost", n, given.Load())
	}
}

// The report of a command can be handled before the flush that published
// the command is done (its other messages' acks still awaited): the take
// of the report's change waits for that flush, and carries its mark.
func TestMarksTakeWaitsForTheFlushPublishing(t *testing.T) {
	m := &marks{delay: time.Hour, mark: func(context.Context, sagastore.Record, []string) {}}
	m.start(context.Background())
	defer m.stop()
	rec := sagastore.Record{Saga: saga.Saga{ID: "s"}}
	_, done := m.publishing(context.Background(), "s")
	took := make(chan []string)
	go func() {
		_, ids := m.take(context.Background(), "s")
		took <- ids
	}()
	select {
	case ids := <-took:
		t.Fatalf("take went ahead of the flush publishing, with %v", ids)
	case <-time.After(50 * time.Millisecond):
	}
	done(context.Background(), rec, []string{"command"})
	if ids := <-took; len(ids) != 1 || ids[0] != "command" {
		t.Fatalf("take got %v, want the flush's [command]", ids)
	}
	// Given up with its context, a take waits no longer, and takes nothing.
	_, done = m.publishing(context.Background(), "s")
	defer done(context.Background(), rec, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, ids := m.take(ctx, "s"); ids != nil {
		t.Fatalf("took %v while a flush was publishing", ids)
	}
}

// A flush slow to publish holds its saga's next input, and next flush, no
// longer than the mark delay: they go on without its mark, and the flush
// that took over stays the one waited for when the slow one ends.
func TestMarksWaitForASlowFlushNoLongerThanTheDelay(t *testing.T) {
	m := &marks{delay: 50 * time.Millisecond, mark: func(context.Context, sagastore.Record, []string) {}}
	m.start(context.Background())
	defer m.stop()
	rec := sagastore.Record{Saga: saga.Saga{ID: "s"}}
	within := func(what string, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { f(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s still waiting for the slow flush after 5 s", what)
		}
	}
	_, slowDone := m.publishing(context.Background(), "s") // never done until the end
	within("a take", func() {
		if _, ids := m.take(context.Background(), "s"); ids != nil {
			t.Errorf("took %v", ids)
		}
	})
	var nextDone func(context.Context, sagastore.Record, []string)
	within("the next flush", func() { _, nextDone = m.publishing(context.Background(), "s") })
	slowDone(context.Background(), rec, []string{"slow"})
	m.mu.Lock()
	stillBusy := m.busy["s"] != nil
	m.mu.Unlock()
	if !stillBusy {
		t.Fatal("the slow flush's end freed the saga while the next flush publishes")
	}
	// The next flush still publishes: a take waits for it, not the slow one.
	took := make(chan []string)
	go func() {
		_, ids := m.take(context.Background(), "s")
		took <- ids
	}()
	nextDone(context.Background(), rec, []string{"next"})
	if ids := <-took; len(ids) != 2 {
		t.Fatalf("take got %v, want both flushes' ids", ids)
	}
}

// stop writes what is still deferred together: one saga's mark does not
// wait for another's, or a store that does not answer would hold Run for
// markTimeout (10 s) a saga. Every mark here waits until all are being
// written (or a second): written one after another, at most one ever is.
func TestMarksStopWritesDeferredMarksTogether(t *testing.T) {
	const sagas = 20
	var (
		mu       sync.Mutex
		writing  int
		most     int
		together = make(chan struct{})
	)
	m := &marks{delay: time.Hour, mark: func(ctx context.Context, _ sagastore.Record, _ []string) {
		mu.Lock()
		writing++
		most = max(most, writing)
		if writing == sagas {
			close(together)
		}
		mu.Unlock()
		select {
		case <-together:
		case <-time.After(time.Second):
		}
		mu.Lock()
		writing--
		mu.Unlock()
	}}
	m.start(context.Background())
	for i := range sagas {
		m.later(context.Background(), sagastore.Record{Saga: saga.Saga{ID: fmt.Sprint(i)}}, []string{fmt.Sprint(i)})
	}
	m.stop()
	if most != sagas {
		t.Fatalf("at most %d of %d deferred marks written at once by stop", most, sagas)
	}
}
