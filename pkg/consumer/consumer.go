// Package consumer runs a handler over a durable JetStream pull consumer with
// the policies every upshift service needs, so that handlers hold only their
// own logic:
//
//   - explicit ack after the handler returns nil;
//   - InProgress heartbeats while it works, so a slow step is not redelivered;
//   - a handler error is retried with a growing delay (NakWithDelay) up to
//     MaxDeliver deliveries, then given up: reported and terminated;
//   - an undecodable message, or a permanent error, is terminated at once;
//   - every terminated message is published to the DEADLETTER stream first
//     (its first 64 KiB), so nothing is dropped silently (if that publish
//     fails the message is retried instead of terminated; on its last
//     delivery, published again until it is out);
//   - a message whose last delivery is never settled (a killed process) is
//     dead-lettered from the server's advisory (lost.go);
//   - a panicking handler is an error, not a crash;
//   - on shutdown the consumer stops pulling, lets running handlers finish
//     within a grace period, then cancels them.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
)

// ErrPermanent marks an error that no retry can fix.
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err so the message is terminated at once.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// Message is a delivered message with its decoded envelope.
type Message struct {
	jetstream.Msg
	Event events.Envelope
	Meta  *jetstream.MsgMetadata
}

// Handler processes one message. A nil error acks it.
type Handler func(ctx context.Context, m *Message) error

// GiveUp is called once a message has failed its last delivery, before it is
// terminated; a phase service uses it to report the step failed.
type GiveUp func(ctx context.Context, m *Message, err error)

// Config of a runner.
type Config struct {
	Stream string
	// Name is the durable consumer name, shared by every instance.
	Name    string
	Filters []string
	// AckWait is how long the server waits for an ack before redelivering;
	// heartbeats are sent at a third of it. Default 30s.
	AckWait time.Duration
	// MaxDeliver bounds deliveries of one message. Default 5.
	MaxDeliver int
	// MaxAckPending bounds unacknowledged messages across every instance;
	// 1 makes processing strictly one at a time, in order. Default 256.
	MaxAckPending int
	// Concurrency is how many handlers run at once here. Default 1.
	Concurrency int
	// Backoff is the delay before redelivery after a handler error, by
	// attempt; the last value repeats. Default 1s, 5s, 15s, 30s.
	Backoff []time.Duration
	// Grace bounds how long shutdown waits for running handlers. Default 10s.
	Grace time.Duration
	// Heartbeat is how often the server confirms that an idle pull is
	// alive. After two missed ones the client pulls again (a pull the
	// server lost would otherwise stall consumption until it expired) and
	// the runner checks that its consumer still exists: one deleted between
	// two pulls is never announced. Default 5s; at least 500ms, at most 15s
	// (half the pull's 30s expiry).
	Heartbeat time.Duration
	// Since, when set, makes a consumer created now start with the messages
	// of that last stretch of time instead of the whole stream. An existing
	// consumer resumes where it was.
	Since time.Duration

	// raw hands messages to the handler without decoding them as events:
	// the server's advisories are not CloudEvents.
	raw bool
}

// The server's bounds on a pull's heartbeat, for the client's default 30s
// pull expiry.
const (
	minHeartbeat = 500 * time.Millisecond
	maxHeartbeat = 15 * time.Second
)

func (c Config) withDefaults() Config {
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = 5
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 256
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if len(c.Backoff) == 0 {
		c.Backoff = []time.Duration{time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second}
	}
	if c.Grace <= 0 {
		c.Grace = 10 * time.Second
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 5 * time.Second
	}
	c.Heartbeat = min(max(c.Heartbeat, minHeartbeat), maxHeartbeat)
	return c
}

// Runner consumes one durable consumer.
type Runner struct {
	js      jetstream.JetStream
	cfg     Config
	handler Handler
	giveUp  GiveUp
	log     *slog.Logger
	metrics *Metrics
}

// Option tunes a Runner.
type Option func(*Runner)

// WithGiveUp sets the hook called when a message is given up.
func WithGiveUp(g GiveUp) Option { return func(r *Runner) { r.giveUp = g } }

// WithMetrics records what the runner does.
func WithMetrics(m *Metrics) Option { return func(r *Runner) { r.metrics = m } }

// New returns a runner; Run starts it.
func New(js jetstream.JetStream, cfg Config, h Handler, log *slog.Logger, opts ...Option) *Runner {
	r := &Runner{js: js, cfg: cfg.withDefaults(), handler: h, log: log.With("consumer", cfg.Name)}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Ensure creates or updates the durable consumer.
func (r *Runner) Ensure(ctx context.Context) (jetstream.Consumer, error) {
	c := r.cfg
	cc := jetstream.ConsumerConfig{
		Durable:       c.Name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    c.MaxDeliver,
		MaxAckPending: c.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if len(c.Filters) == 1 {
		cc.FilterSubject = c.Filters[0]
	} else {
		cc.FilterSubjects = c.Filters
	}
	if c.Since > 0 {
		// A deliver policy cannot change once the consumer exists: keep its.
		existing, err := r.js.Consumer(ctx, c.Stream, c.Name)
		switch {
		case err == nil:
			ec := existing.CachedInfo().Config
			cc.DeliverPolicy, cc.OptStartTime = ec.DeliverPolicy, ec.OptStartTime
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			start := time.Now().Add(-c.Since)
			cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
		default:
			return nil, fmt.Errorf("look up consumer %s on %s: %w", c.Name, c.Stream, err)
		}
	}
	cons, err := r.js.CreateOrUpdateConsumer(ctx, c.Stream, cc)
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s on %s: %w", c.Name, c.Stream, err)
	}
	return cons, nil
}

// Run consumes until ctx is cancelled, then drains: it stops pulling, lets
// running handlers finish within the grace period and returns. A consumer
// that disappears (deleted by an operator, lost with a stream) is created
// again and consumption goes on.
//
// Beside it runs the runner's follower of lost messages (see lost.go).
func (r *Runner) Run(ctx context.Context) error {
	if lost := r.lost(); lost != nil {
		var lwg sync.WaitGroup
		lwg.Go(func() { _ = lost.Run(ctx) })
		defer lwg.Wait()
	}
	// Handlers outlive ctx by the grace period, so that work under way ends
	// cleanly rather than half done.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	sem := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	for ctx.Err() == nil {
		if err := r.consume(ctx, hctx, sem, &wg); err != nil && ctx.Err() == nil {
			r.log.Warn("consumer lost; creating it again", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.cfg.Grace):
		r.log.Warn("handlers still running after the grace period; cancelling them", "grace", r.cfg.Grace)
		hcancel()
		<-done
	}
	return nil
}

// consume pulls from the consumer, handing each message to a handler, until
// ctx ends (nil) or the consumer is lost (an error).
func (r *Runner) consume(ctx, hctx context.Context, sem chan struct{}, wg *sync.WaitGroup) error {
	cons, err := r.Ensure(ctx)
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(r.cfg.Concurrency), jetstream.PullHeartbeat(r.cfg.Heartbeat))
	if err != nil {
		return fmt.Errorf("consume %s: %w", r.cfg.Name, err)
	}
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			it.Drain() // deliver what is buffered, then close
		case <-stopped:
			it.Stop()
		}
	}()
	for {
		msg, err := it.Next()
		switch {
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consume %s: %w", r.cfg.Name, err)
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			return fmt.Errorf("consume %s: %w", r.cfg.Name, err)
		case err != nil:
			// Missed heartbeats, most often. The server tells a pull that
			// its consumer was deleted only if the pull was waiting then;
			// one issued after meets silence: look.
			if _, ierr := cons.Info(ctx); errors.Is(ierr, jetstream.ErrConsumerNotFound) {
				return fmt.Errorf("consume %s: %w (%w)", r.cfg.Name, ierr, err)
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
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			defer stop() // once settled
			r.process(hctx, msg)
		}()
	}
}

func (r *Runner) process(ctx context.Context, msg jetstream.Msg) {
	start := time.Now()
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to ack or terminate.
		r.log.Error("message without metadata", "subject", msg.Subject(), "err", err)
		return
	}
	m := &Message{Msg: msg, Meta: meta}
	if !r.cfg.raw {
		m.Event, err = events.Decode(msg.Data())
	}
	if err == nil {
		err = r.run(ctx, m)
	}
	result := r.settle(ctx, m, err)
	r.metrics.observe(r.cfg.Stream, r.cfg.Name, result, time.Since(start), meta.NumPending)
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

// run calls the handler with panic recovery.
func (r *Runner) run(ctx context.Context, m *Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return r.handler(ctx, m)
}

// Results of processing a message, as counted by Metrics.
const (
	ResultAcked    = "acked"
	ResultRetried  = "retried"
	ResultTermed   = "terminated"
	ResultGaveUp   = "gave_up"
	ResultAckError = "ack_error"
	ResultLost     = "lost" // dead-lettered from the server's advisory (lost.go)
)

func (r *Runner) settle(ctx context.Context, m *Message, err error) string {
	log := r.log.With("subject", m.Subject(), "seq", m.Meta.Sequence.Stream, "delivery", m.Meta.NumDelivered)
	if m.Event.Saga != "" {
		log = log.With("saga", m.Event.Saga)
	}
	switch {
	case err == nil:
		if err := m.Ack(); err != nil {
			log.Warn("ack failed; the message will be redelivered", "err", err)
			return ResultAckError
		}
		return ResultAcked
	case errors.Is(err, events.ErrMalformed) || errors.Is(err, ErrPermanent):
		log.Error("terminating message", "err", err)
		return r.terminate(ctx, m, log, "rejected", err, ResultTermed)
	case m.Meta.NumDelivered >= uint64(r.cfg.MaxDeliver):
		log.Error("giving up on message after its last delivery", "err", err)
		if r.giveUp != nil {
			r.giveUp(ctx, m, err)
		}
		return r.terminate(ctx, m, log, "gave up", err, ResultGaveUp)
	default:
		delay := r.cfg.Backoff[min(int(m.Meta.NumDelivered)-1, len(r.cfg.Backoff)-1)]
		log.Warn("handler failed; retrying", "err", err, "in", delay)
		if err := m.NakWithDelay(delay); err != nil {
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

func (r *Runner) terminate(ctx context.Context, m *Message, log *slog.Logger, why string, cause error, result string) string {
	data := m.Data()
	dl := events.DeadLetter{
		Stream: r.cfg.Stream, Consumer: r.cfg.Name, Subject: m.Subject(),
		Sequence: m.Meta.Sequence.Stream, Deliveries: m.Meta.NumDelivered,
		Reason: why, Error: cause.Error(), Headers: m.Headers(),
		Payload: data[:min(len(data), maxDeadPayload)], Truncated: len(data) > maxDeadPayload,
	}
	env, err := r.deadLetter(dl, m.Event.Saga)
	if err != nil {
		log.Error("cannot build the dead letter; keeping the message for a later delivery", "err", err)
		_ = m.NakWithDelay(r.cfg.Backoff[len(r.cfg.Backoff)-1])
		return ResultRetried
	}
	publish := func() error { return bus.Publish(ctx, r.js, events.DeadLetterSubject(r.cfg.Stream, r.cfg.Name), env) }
	err = publish()
	// On its last delivery the server will not deliver the message again:
	// a Nak would lose it. Keep trying here, heartbeats holding it, until
	// the dead letter is out or the runner stops.
	for attempt := 0; err != nil && m.Meta.NumDelivered >= uint64(r.cfg.MaxDeliver); attempt++ {
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
		_ = m.NakWithDelay(r.cfg.Backoff[len(r.cfg.Backoff)-1])
		return ResultRetried
	}
	if err := m.TermWithReason(fmt.Sprintf("%s: %.200s", why, cause)); err != nil {
		log.Warn("term failed", "err", err)
	}
	return result
}
