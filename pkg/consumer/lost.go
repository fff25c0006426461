package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
)

// Lost messages.
//
// A message whose last delivery is never settled (its handler's process
// killed, or stopped past its grace period) is not delivered again, and no
// handler is left to dead-letter it: the server only announces it, with a
// MAX_DELIVERIES advisory. The ADVISORIES stream keeps those announcements,
// so none is missed while no instance runs, and every runner follows its own
// consumer's with a second durable consumer, <name>-lost, that dead-letters
// each lost message with the reason "lost". On a work-queue stream the
// message is then deleted, as its termination would have.

// LostSuffix ends the name of a runner's lost-message follower.
const LostSuffix = "-lost"

// ReasonLost is the reason of a dead letter for a lost message.
const ReasonLost = "lost"

// lost returns the follower of r's lost messages, or nil for a runner that
// consumes advisories, a follower included. Its pipeline has no Decode:
// advisories are not CloudEvents.
func (r *Runner) lost() *Runner {
	c := r.cfg
	if c.Stream == events.StreamAdvisories {
		return nil
	}
	cfg := Config{
		Stream: events.StreamAdvisories, Name: c.Name + LostSuffix,
		Filters: []string{events.MaxDeliveriesSubject(c.Stream, c.Name)},
		AckWait: c.AckWait, MaxDeliver: c.MaxDeliver, MaxAckPending: 16, Concurrency: 1,
		Backoff: c.Backoff, Grace: c.Grace, Heartbeat: c.Heartbeat, Replicas: c.Replicas,
	}.withDefaults()
	f := &Runner{js: r.js, cfg: cfg, log: r.log.With("follower", "lost"), metrics: r.metrics}
	f.pipeline = Chain(r.deadLetterLost, r.metrics.Middleware(cfg.Stream, cfg.Name),
		GiveUpAfter(cfg.MaxDeliver, nil), Classify(cfg.Backoff), Recover)
	return f
}

// advisory is the part of the server's MAX_DELIVERIES advisory used here.
type advisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// deadLetterLost dead-letters the message an advisory names: a copy from
// its stream, with the same id the runner's own dead letter would have.
func (r *Runner) deadLetterLost(ctx context.Context, d *Delivery) error {
	var a advisory
	if err := json.Unmarshal(d.Data(), &a); err != nil || a.StreamSeq == 0 || a.Stream != r.cfg.Stream || a.Consumer != r.cfg.Name {
		return fmt.Errorf("%w: not a max-deliveries advisory for %s/%s (%v): %.200s", events.ErrMalformed, r.cfg.Stream, r.cfg.Name, err, d.Data())
	}
	s, err := r.js.Stream(ctx, a.Stream)
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", a.Stream, err)
	}
	dl := events.DeadLetter{
		Stream: a.Stream, Consumer: a.Consumer, Sequence: a.StreamSeq, Deliveries: a.Deliveries, Reason: ReasonLost,
		Error: "its last delivery was never settled: the process handling it stopped, or was stopped past its grace period",
	}
	var saga string
	msg, err := s.GetMsg(ctx, a.StreamSeq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		msg = nil
		dl.Error += "; it had left its stream before it could be copied here"
	case err != nil:
		return fmt.Errorf("read %s message %d: %w", a.Stream, a.StreamSeq, err)
	default:
		dl.Subject, dl.Headers = msg.Subject, msg.Header
		dl.Payload, dl.Truncated = msg.Data[:min(len(msg.Data), maxDeadPayload)], len(msg.Data) > maxDeadPayload
		if env, err := events.Decode(msg.Data); err == nil {
			saga = env.Saga
		}
	}
	env, err := r.deadLetter(dl, saga)
	if err != nil {
		return Permanent(err)
	}
	if err := bus.Publish(ctx, r.js, events.DeadLetterSubject(a.Stream, a.Consumer), env); err != nil {
		return fmt.Errorf("dead-letter %s message %d: %w", a.Stream, a.StreamSeq, err)
	}
	r.log.Error("dead-lettered a message whose last delivery was never settled",
		"subject", dl.Subject, "seq", a.StreamSeq, "deliveries", a.Deliveries, "saga", saga)
	if msg != nil && s.CachedInfo().Config.Retention == jetstream.WorkQueuePolicy {
		if err := s.DeleteMsg(ctx, a.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("delete %s message %d after dead-lettering it: %w", a.Stream, a.StreamSeq, err)
		}
	}
	r.metrics.lostOne(a.Stream, a.Consumer)
	return nil
}
