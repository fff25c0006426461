package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
)

// Results of processing a message, as counted by Metrics.
const (
	ResultAcked    = "acked"
	ResultRetried  = "retried"
	ResultTermed   = "terminated"
	ResultGaveUp   = "gave_up"
	ResultAckError = "ack_error"
	ResultLost     = "lost" // dead-lettered from the server's advisory (lost.go)
)

// settle acks msg, naks it with a delay, or dead-letters and terminates it,
// as the pipeline's verdict err says, and returns the result.
func (r *Runner) settle(ctx context.Context, msg jetstream.Msg, d *Delivery, err error) string {
	log := d.log
	var dead *deadVerdict
	var retry *retryVerdict
	switch {
	case err == nil:
		ack := msg.Ack
		if r.cfg.OrderBy != nil {
			// Confirmed, so that the next message of its key, woken once
			// this one is settled, finds it gone from the stream.
			ack = func() error { return msg.DoubleAck(ctx) }
		}
		if err := ack(); err != nil {
			log.Warn("ack failed; the message will be redelivered", "err", err)
			return ResultAckError
		}
		return ResultAcked
	case errors.As(err, &dead):
		if dead.reason == ReasonGaveUp {
			log.Error("giving up on message after its last delivery", "err", dead.err)
			return r.terminate(ctx, msg, d, dead, ResultGaveUp)
		}
		log.Error("terminating message", "err", dead.err)
		return r.terminate(ctx, msg, d, dead, ResultTermed)
	default:
		delay := backoffFor(r.cfg.Backoff, d.delivered)
		if errors.As(err, &retry) {
			delay, err = retry.delay, retry.err
		}
		log.Warn("handler failed; retrying", "err", err, "in", delay)
		if err := msg.NakWithDelay(delay); err != nil {
			log.Warn("nak failed", "err", err)
		}
		return ResultRetried
	}
}

// maxDeadPayload bounds the copy of a message kept in a dead letter.
const maxDeadPayload = 64 << 10

// deadLetter is the event reporting a dead message. Its id names the
// message, so the runner's own dead letter and one from its lost-message
// follower (should both happen) are one message in the DEADLETTER stream.
func (r *Runner) deadLetter(dl events.DeadLetter, saga string) (events.Envelope, error) {
	id := fmt.Sprintf("dlq/%s/%s/%d", r.cfg.Stream, r.cfg.Name, dl.Sequence)
	return events.New(id, events.TypeDeadLetter, "upshift/"+r.cfg.Name, saga, 0, time.Now(), dl)
}

// terminate publishes the dead letter of msg, then terminates it. A message
// whose dead letter cannot be published is kept rather than lost.
func (r *Runner) terminate(ctx context.Context, msg jetstream.Msg, d *Delivery, v *deadVerdict, result string) string {
	log := d.log
	dl := events.DeadLetter{
		Stream: r.cfg.Stream, Consumer: r.cfg.Name, Subject: d.subject,
		Sequence: d.sequence, Deliveries: d.delivered,
		Reason: v.reason, Error: v.err.Error(), Headers: d.header,
		Payload: d.data[:min(len(d.data), maxDeadPayload)], Truncated: len(d.data) > maxDeadPayload,
	}
	env, err := r.deadLetter(dl, d.event.Saga)
	if err != nil {
		log.Error("cannot build the dead letter; keeping the message for a later delivery", "err", err)
		_ = msg.NakWithDelay(r.cfg.Backoff[len(r.cfg.Backoff)-1])
		return ResultRetried
	}
	publish := func() error { return bus.Publish(ctx, r.js, events.DeadLetterSubject(r.cfg.Stream, r.cfg.Name), env) }
	err = publish()
	// On its last delivery the server will not deliver the message again:
	// a Nak would lose it. Keep trying here, heartbeats holding it, until
	// the dead letter is out or the runner stops.
	for attempt := 0; err != nil && d.delivered >= uint64(r.cfg.MaxDeliver); attempt++ {
		delay := r.cfg.Backoff[min(attempt, len(r.cfg.Backoff)-1)]
		log.Error("cannot dead-letter the message on its last delivery; trying again", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			log.Error("stopping before the message could be dead-lettered: the server will announce it lost, and a runner's lost-message follower will dead-letter it", "err", err)
			return ResultRetried
		case <-time.After(delay):
		}
		err = publish()
	}
	if err != nil {
		// Keep the message rather than lose it: it comes back later.
		log.Error("cannot dead-letter; keeping the message for a later delivery", "err", err)
		_ = msg.NakWithDelay(r.cfg.Backoff[len(r.cfg.Backoff)-1])
		return ResultRetried
	}
	if err := msg.TermWithReason(fmt.Sprintf("%s: %.200s", v.reason, v.err)); err != nil {
		log.Warn("term failed", "err", err)
	}
	return result
}
