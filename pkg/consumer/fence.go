package consumer

import (
	"context"
	"errors"
	"log/slog"
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
	// wake holds, per key with a message held here, a channel closed when a
	// message of that key is settled here.
	wake map[string]chan struct{}
}

func (f *fence) use(s jetstream.Stream) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stream = s
}

// changed returns a channel closed once a message of key is settled here.
func (f *fence) changed(key string) (<-chan struct{}, jetstream.Stream) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.wake == nil {
		f.wake = map[string]chan struct{}{}
	}
	c, ok := f.wake[key]
	if !ok {
		c = make(chan struct{})
		f.wake[key] = c
	}
	return c, f.stream
}

// passed wakes the messages of key held here: one of theirs was settled.
func (f *fence) passed(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.wake[key]; ok {
		close(c)
		delete(f.wake, key)
	}
}

// Bounds of the pause between two looks at the stream while held back; a
// message of the key settled here wakes the held ones at once.
const (
	fenceFirstPause = 10 * time.Millisecond
	fenceMaxPause   = time.Second
	fenceWarnEvery  = time.Minute
)

// wait returns nil once no message matching key is left in the stream
// before seq, or ctx's error.
func (f *fence) wait(ctx context.Context, log *slog.Logger, key string, seq uint64) error {
	pause, since, warned, held := fenceFirstPause, time.Now(), time.Now(), false
	for {
		woken, s := f.changed(key)
		first, err := s.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(key))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			// Not even this one is left: settled by another delivery of it
			// meanwhile; the handler, idempotent, will find it done.
			return nil
		case err == nil && first.Sequence >= seq:
			if held {
				log.Info("released: the earlier messages of its key are settled", "held", time.Since(since).Round(time.Millisecond))
			}
			return nil
		case err == nil && !held:
			held = true
			log.Info("held back behind an earlier message of its key, not yet settled", "earlier", first.Sequence)
		case err == nil && time.Since(warned) >= fenceWarnEvery:
			warned = time.Now()
			log.Warn("still held back behind an earlier message of its key", "earlier", first.Sequence,
				"held", time.Since(since).Round(time.Second))
		case err != nil && ctx.Err() == nil:
			log.Warn("cannot look for earlier messages of its key; looking again", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-woken:
			pause = fenceFirstPause
		case <-time.After(pause):
			pause = min(2*pause, fenceMaxPause)
		}
	}
}
