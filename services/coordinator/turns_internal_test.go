package coordinator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/saga"
)

// queued returns the inputs of saga id waiting for its turn.
func (t *turns) queued(id string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tu := t.sagas[id]; tu != nil {
		return len(tu.queue)
	}
	return 0
}

// waiting returns the number of sagas whose turn is held.
func (t *turns) waiting() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sagas)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
	}
}

type waited struct {
	applied bool
	err     error
}

// One input of a saga at a time: the inputs that come while one holds the
// saga's turn wait, and its holder takes them, in order, and tells each
// how its write went; an input of another saga does not wait; an input
// whose context ends while it waits leaves the queue; and when the holder
// passes the turn, the first input waiting gets it.
func TestTurnsOneInputOfASagaAtATime(t *testing.T) {
	t.Parallel()
	var tu turns
	ctx := context.Background()
	a := newJob(saga.Input{Kind: saga.InputTick}, seen{})
	if applied, err := tu.wait(ctx, "s1", a); applied || err != nil {
		t.Fatalf("the first input: applied %v, %v", applied, err)
	}
	if applied, err := tu.wait(ctx, "s2", newJob(saga.Input{}, seen{})); applied || err != nil {
		t.Fatalf("another saga's input waited: applied %v, %v", applied, err)
	}
	tu.pass("s2")
	results := make(chan waited, 2)
	b, c := newJob(saga.Input{Kind: saga.InputApprove}, seen{}), newJob(saga.Input{Kind: saga.InputCancel}, seen{})
	for _, j := range []*job{b, c} {
		go func() {
			applied, err := tu.wait(ctx, "s1", j)
			results <- waited{applied, err}
		}()
		eventually(t, "an input queued", func() bool { return tu.queued("s1") == indexOf([]*job{b, c}, j)+1 })
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if applied, err := tu.wait(short, "s1", newJob(saga.Input{}, seen{})); !applied || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an input whose context ended while it waited: applied %v, %v", applied, err)
	}
	g := tu.group("s1", a)
	if len(g) != 3 || g[0] != a || g[1] != b || g[2] != c || tu.queued("s1") != 0 {
		t.Fatalf("group of %d, %d left waiting; want a, b, c in order and none", len(g), tu.queued("s1"))
	}
	boom := errors.New("boom")
	b.done <- nil
	c.done <- boom
	got := []waited{<-results, <-results}
	if !got[0].applied || !got[1].applied || errors.Join(got[0].err, got[1].err) == nil || got[0].err != nil && got[1].err != nil {
		t.Fatalf("the grouped inputs heard %+v, want applied, one nil and one boom", got)
	}
	// Hand-over: d waits while a still holds the turn; a passes it to d.
	d := newJob(saga.Input{}, seen{})
	go func() {
		applied, err := tu.wait(ctx, "s1", d)
		results <- waited{applied, err}
	}()
	eventually(t, "d queued", func() bool { return tu.queued("s1") == 1 })
	tu.pass("s1")
	if w := <-results; w.applied || w.err != nil {
		t.Fatalf("d after the hand-over: %+v, want its turn", w)
	}
	if g := tu.group("s1", d); len(g) != 1 {
		t.Fatalf("d's group: %d inputs", len(g))
	}
	tu.pass("s1")
	if n := tu.waiting(); n != 0 {
		t.Fatalf("%d sagas still held once every input is done", n)
	}
}
