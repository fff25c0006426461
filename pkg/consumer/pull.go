package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// consume pulls from the consumer, handing each message to the pipeline,
// until ctx ends (nil) or the consumer is lost (an error).
func (r *Runner) consume(ctx, hctx context.Context, sem chan struct{}, wg *sync.WaitGroup) error {
	cons, err := r.Ensure(ctx)
	if err != nil {
		r.ready.Store(false)
		return err
	}
	// The backlog from the start, not from the first heartbeat: a scrape
	// between the two would find no series.
	r.metrics.setPending(r.cfg.Stream, r.cfg.Name, cons.CachedInfo().NumPending)
	it, err := cons.Messages(jetstream.PullMaxMessages(r.cfg.Concurrency), jetstream.PullHeartbeat(r.cfg.Heartbeat))
	if err != nil {
		r.ready.Store(false)
		return fmt.Errorf("consume %s: %w", r.cfg.Name, err)
	}
	r.ready.Store(true)
	stopped := make(chan struct{})
	defer close(stopped)
	gone := make(chan error, 1)
	go func() {
		t := time.NewTicker(r.cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				it.Drain() // deliver what is buffered, then close
				return
			case <-stopped:
				it.Stop()
				return
			case <-t.C:
				if err := r.look(ctx, cons); err != nil {
					gone <- err
					it.Stop()
					return
				}
			}
		}
	}()
	for {
		msg, err := it.Next()
		switch {
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			if ctx.Err() != nil {
				return nil
			}
			select {
			case gerr := <-gone:
				return fmt.Errorf("consume %s: %w", r.cfg.Name, gerr)
			default:
				return fmt.Errorf("consume %s: %w", r.cfg.Name, err)
			}
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			return fmt.Errorf("consume %s: %w", r.cfg.Name, err)
		case err != nil:
			// Missed heartbeats, most often. The server tells a pull that
			// its consumer was deleted only if the pull was waiting then;
			// one issued after meets silence: look.
			if lerr := r.look(ctx, cons); lerr != nil {
				return fmt.Errorf("consume %s: %w (%w)", r.cfg.Name, lerr, err)
			}
			r.log.Warn("consumer interrupted", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		// Heartbeats from now: the message may wait here for a handler.
		stop := r.heartbeats(msg)
		if r.cfg.OrderBy != nil {
			// Held back, a message must not keep a handler, nor the pull
			// loop, from the earlier message it waits for.
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer stop() // once settled
				r.inOrder(ctx, hctx, sem, msg)
			}()
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			defer stop() // once settled
			r.process(hctx, msg)
		}()
	}
}

// look reads the consumer's state, so that the pending gauge follows it
// while no message arrives (drained, purged), and returns an error if the
// consumer is gone. Any other failure is passing: the next look, or the
// pull, tells.
func (r *Runner) look(ctx context.Context, cons jetstream.Consumer) error {
	info, err := cons.Info(ctx)
	switch {
	case err == nil:
		r.metrics.setPending(r.cfg.Stream, r.cfg.Name, info.NumPending)
		return nil
	case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		return err
	default:
		return nil
	}
}

// process runs the pipeline on one message and settles it as the pipeline
// says.
func (r *Runner) process(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to ack or terminate.
		r.log.Error("message without metadata", "subject", msg.Subject(), "err", err)
		return
	}
	d := &Delivery{subject: msg.Subject(), header: msg.Headers(), data: msg.Data(),
		sequence: meta.Sequence.Stream, delivered: meta.NumDelivered, pending: meta.NumPending}
	d.log = r.log.With("subject", d.subject, "seq", d.sequence, "delivery", d.delivered)
	result := r.settle(ctx, msg, d, r.pipeline(ctx, d))
	for _, f := range d.settled {
		f(result)
	}
}

// heartbeats tells the server every third of the ack wait that m is being
// worked on, until the returned function is called: from when it is taken
// until it is settled, so neither waiting for a free handler nor a slow
// dead-letter publish lets it be redelivered.
func (r *Runner) heartbeats(m jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(r.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := m.InProgress(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
					r.log.Warn("heartbeat failed", "subject", m.Subject(), "err", err)
				}
			}
		}
	}()
	return func() { close(done) }
}

// inOrder runs the pipeline on msg once no earlier message of its key is
// left in the stream (see Config.OrderBy), then wakes the next message of
// that key held here.
func (r *Runner) inOrder(ctx, hctx context.Context, sem chan struct{}, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		r.process(hctx, msg) // which says what is wrong with it
		return
	}
	filter := r.cfg.OrderBy(msg.Subject())
	log := r.log.With("subject", msg.Subject(), "seq", meta.Sequence.Stream)
	release, err := r.fence.wait(ctx, log, filter, meta.Sequence.Stream)
	if err != nil {
		// Stopping while it is held back: given back at once, to whichever
		// instance runs next.
		if err := msg.Nak(); err != nil {
			log.Warn("nak failed", "err", err)
		}
		return
	}
	sem <- struct{}{}
	defer func() { <-sem }()
	r.process(hctx, msg)
	release()
}
