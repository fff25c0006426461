package coordinator

import (
	"context"
	"errors"
	"sync"

	"github.com/upshift/upshift/pkg/saga"
)

// turns lets one input of a saga at a time be applied by this instance,
// and the inputs that wait be applied together. The coordinator handles
// several inputs at once; two of one saga applied at once would both read
// the saga, and all but one would lose the compare-and-set, read it again
// and retry: a fleet's saga hears from hundreds of targets at once, and
// each input would be tried many times. In turns, the input whose turn it
// is takes the inputs waiting behind it (up to maxGroup), applies them one
// after the other to the saga as it last stored it (recent) and stores the
// result in one write; each waiting input is then told how that went. The
// next input to come, if any, has the next turn. Inputs of different sagas
// do not wait for each other.
type turns struct {
	mu    sync.Mutex
	sagas map[string]*turn
}

// maxGroup bounds the inputs applied in one write.
const maxGroup = 64

// turn is one saga's while an input holds it (a saga has one only then):
// the inputs waiting.
type turn struct {
	queue []*job
}

// job is one input waiting for its saga's turn. done receives the outcome
// of the write that applied it, or errYourTurn: its goroutine holds the
// turn and applies it (and those waiting) itself.
type job struct {
	in   saga.Input
	from seen
	done chan error
}

var errYourTurn = errors.New("your turn")

func newJob(in saga.Input, from seen) *job {
	return &job{in: in, from: from, done: make(chan error, 1)}
}

// wait returns when j's saga's turn is j's (nil), or j was applied by the
// input that held it (applied true, with that write's outcome), or ctx
// ended before anyone took j.
func (t *turns) wait(ctx context.Context, id string, j *job) (applied bool, err error) {
	t.mu.Lock()
	if t.sagas == nil {
		t.sagas = map[string]*turn{}
	}
	tu := t.sagas[id]
	if tu == nil {
		t.sagas[id] = &turn{}
		t.mu.Unlock()
		return false, nil
	}
	tu.queue = append(tu.queue, j)
	t.mu.Unlock()
	select {
	case err := <-j.done:
		if err == errYourTurn {
			return false, nil
		}
		return true, err
	case <-ctx.Done():
	}
	t.mu.Lock()
	if i := indexOf(tu.queue, j); i >= 0 {
		tu.queue = append(tu.queue[:i:i], tu.queue[i+1:]...)
		t.mu.Unlock()
		return true, ctx.Err()
	}
	t.mu.Unlock()
	// Taken already: into a group, or handed the turn.
	if err := <-j.done; err != errYourTurn {
		return true, err
	}
	return false, nil
}

// group returns j and the inputs waiting behind it, in the order they came,
// at most maxGroup in all, for the holder of the turn to apply.
func (t *turns) group(id string, j *job) []*job {
	t.mu.Lock()
	defer t.mu.Unlock()
	tu := t.sagas[id]
	n := min(len(tu.queue), maxGroup-1)
	out := append([]*job{j}, tu.queue[:n]...)
	tu.queue = append([]*job(nil), tu.queue[n:]...)
	return out
}

// pass ends the holder's turn: the first input waiting gets the next, or
// the saga is left.
func (t *turns) pass(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tu := t.sagas[id]
	if len(tu.queue) == 0 {
		delete(t.sagas, id)
		return
	}
	next := tu.queue[0]
	tu.queue = tu.queue[1:]
	next.done <- errYourTurn
}

func indexOf(q []*job, j *job) int {
	for i, x := range q {
		if x == j {
			return i
		}
	}
	return -1
}
