package consumer

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// fence holds a message back while an earlier message of its key is still
// in the stream (Config.OrderBy). On a work queue a settled message leaves
// the stream, so the stream itself says what is unfinished, whoever holds
// it: a handler of this process or another's, or the server, which will
// deliver it again (after a nak's delay, or an ack wait when its process
// was killed). Asking the stream, rather than remembering what this process
// saw, is what keeps a roll-back behind its apply when the apply comes back
// as a redelivery after the roll-back was delivered.
type fence struct {
	mu     sync.Mutex
	stream jetstream.Stream
	// held are, per key, the messages of that key held or running here,
	// by stream sequence. Only the first looks at the stream; the others
	// wait for it to be settled here, so that a settled message costs one
	// look, not one per message held behind it.
	held map[string][]*holder
}

type holder struct {
	seq  uint64
	wake chan struct{} // told when it may have become first
}

func (f *fence) use(s jetstream.Stream) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stream = s
}

// hold registers a message of key, behind every message of key held here
// before it in the stream and every earlier copy of it; release must be
// called once.
func (f *fence) hold(key string, seq uint64) *holder {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held == nil {
		f.held = map[string][]*holder{}
	}
	h := &holder{seq: seq, wake: make(chan struct{}, 1)}
	hs := f.held[key]
	// After any holder of the same message: a redelivery of a message
	// running here (its ack wait passed while a leader changed, say) waits
	// for that copy to be settled, then finds it done. Before it, the two
	// would run at once.
	i, _ := slices.BinarySearchFunc(hs, seq, func(x *holder, s uint64) int {
		if x.seq == s {
			return -1
		}
		return cmp.Compare(x.seq, s)
	})
	f.held[key] = slices.Insert(hs, i, h)
	return h
}

// first reports whether h is the earliest message of key held here, and
// the stream to look at.
func (f *fence) first(key string, h *holder) (bool, jetstream.Stream) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held[key][0] == h, f.stream
}

// release forgets h and wakes the message of key that is now first here.
func (f *fence) release(key string, h *holder) {
	f.mu.Lock()
	defer f.mu.Unlock()
	hs := slices.DeleteFunc(f.held[key], func(x *holder) bool { return x == h })
	if len(hs) == 0 {
		delete(f.held, key)
		return
	}
	f.held[key] = hs
	select {
	case hs[0].wake <- struct{}{}:
	default:
	}
}

// Bounds of the pause between two looks at the stream while held back
// behind a message not held here.
const (
	fenceFirstPause = 10 * time.Millisecond
	fenceMaxPause   = time.Second
	fenceWarnEvery  = time.Minute
)

// wait returns once no message matching key is left in the stream before
// seq, and a function to call once the message is settled; or ctx's error.
func (f *fence) wait(ctx context.Context, log *slog.Logger, key string, seq uint64) (release func(), err error) {
	h := f.hold(key, seq)
	release = func() { f.release(key, h) }
	pause, since, warned, held := fenceFirstPause, time.Now(), time.Now(), false
	for {
		first, s := f.first(key, h)
		if !first {
			// An earlier message of the key is here: it goes first.
			if !held {
				held = true
				log.Info("held back behind an earlier message of its key, not yet settled")
			}
			select {
			case <-ctx.Done():
				release()
				return nil, ctx.Err()
			case <-h.wake:
			}
			continue
		}
		earliest, err := s.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(key))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			// Not even this one is left: settled by another delivery of it
			// meanwhile; the handler, idempotent, will find it done.
			return release, nil
		case err == nil && earliest.Sequence >= seq:
			if held {
				log.Info("released: the earlier messages of its key are settled", "held", time.Since(since).Round(time.Millisecond))
			}
			return release, nil
		case err == nil && !held:
			held = true
			log.Info("held back behind an earlier message of its key, not yet settled", "earlier", earliest.Sequence)
		case err == nil && time.Since(warned) >= fenceWarnEvery:
			warned = time.Now()
			log.Warn("still held back behind an earlier message of its key", "earlier", earliest.Sequence,
				"held", time.Since(since).Round(time.Second))
		case err != nil && ctx.Err() == nil:
			log.Warn("cannot look for earlier messages of its key; looking again", "err", err)
		}
		select {
		case <-ctx.Done():
			release()
			return nil, ctx.Err()
		case <-h.wake:
			pause = fenceFirstPause
		case <-time.After(pause):
			pause = min(2*pause, fenceMaxPause)
		}
	}
}
