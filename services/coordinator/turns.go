package coordinator

import (
	"context"
	"sync"
)

// turns lets one input of a saga at a time be applied by this instance.
// The coordinator handles several inputs at once; two of one saga applied
// together would both read the saga, and all but one would lose the
// compare-and-set, read it again and retry. A fleet's saga hears from
// hundreds of targets at once: each input would be tried many times. In
// turns, each finds the record the one before it stored (recent), and
// only another instance's change makes it read the store. Inputs of
// different sagas do not wait for each other.
type turns struct {
	mu    sync.Mutex
	queue map[string]*turn
}

// turn is one saga's: a token held by the input whose turn it is, and the
// number of inputs holding or waiting for it.
type turn struct {
	token   chan struct{}
	holders int
}

// take waits for saga id's turn, or for ctx to end; release gives it to
// the next input waiting, if any.
func (t *turns) take(ctx context.Context, id string) (release func(), err error) {
	t.mu.Lock()
	if t.queue == nil {
		t.queue = map[string]*turn{}
	}
	tu := t.queue[id]
	if tu == nil {
		tu = &turn{token: make(chan struct{}, 1)}
		tu.token <- struct{}{}
		t.queue[id] = tu
	}
	tu.holders++
	t.mu.Unlock()
	done := func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if tu.holders--; tu.holders == 0 {
			delete(t.queue, id)
		}
	}
	select {
	case <-tu.token:
		return func() { tu.token <- struct{}{}; done() }, nil
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
}

// waiting returns the number of sagas with an input holding or waiting for
// their turn.
func (t *turns) waiting() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.queue)
}
