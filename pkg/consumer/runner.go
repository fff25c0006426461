package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

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
	// server lost would otherwise stall consumption until it expired).
	// The runner also reads its consumer's state this often: its pending
	// count, and whether it still exists, as one deleted between two pulls
	// is never announced. Default 5s; at least 500ms, at most 15s (half the
	// pull's 30s expiry).
	Heartbeat time.Duration
	// Since, when set, makes a consumer created now start with the messages
	// of that last stretch of time instead of the whole stream. An existing
	// consumer resumes where it was.
	Since time.Duration
	// Replicas of the consumer; 0: as many as its stream has. One replica
	// on a replicated stream costs the cluster the least, and loses the
	// consumer's state (where it was, what is pending) with its node.
	Replicas int
	// OrderBy, when set, keeps messages in stream order per key: it returns
	// a message's key, a subject filter matching every message with that key
	// (e.g. every command for one target). A message is handed to the
	// handler only once no earlier message matching its key is left in the
	// stream, here or anywhere: on a work queue an earlier message still
	// there is one not yet settled, being handled elsewhere or waiting for
	// its redelivery (nak'ed, or its process killed), and it goes first.
	// Messages of different keys run at once, up to Concurrency; those held
	// back take no handler, only a slot of MaxAckPending. The stream must be
	// a work queue.
	OrderBy func(subject string) (filter string)
}

// The server's bounds on a pull's heartbeat, for the client's default 30s
// pull expiry.
const (
	minHeartbeat = 500 * time.Millisecond
	maxHeartbeat = 15 * time.Second
)

// WithDefaults returns c with every unset setting at its default: what a
// runner made from c uses.
func (c Config) WithDefaults() Config { return c.withDefaults() }

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
	js       jetstream.JetStream
	cfg      Config
	pipeline Handler // handler in its middleware
	giveUp   GiveUp
	inner    []Middleware
	log      *slog.Logger
	metrics  *Metrics
	ready    atomic.Bool
	fence    fence
}

// Option tunes a Runner.
type Option func(*Runner)

// WithGiveUp sets the hook called when a message is given up.
func WithGiveUp(g GiveUp) Option { return func(r *Runner) { r.giveUp = g } }

// WithMetrics records what the runner does.
func WithMetrics(m *Metrics) Option { return func(r *Runner) { r.metrics = m } }

// WithMiddleware wraps the handler in mws, the first outermost, inside the
// runner's own: they see the decoded event, and their errors are classified
// like the handler's.
func WithMiddleware(mws ...Middleware) Option {
	return func(r *Runner) { r.inner = append(r.inner, mws...) }
}

// New returns a runner of h over CloudEvents; Run starts it.
func New(js jetstream.JetStream, cfg Config, h Handler, log *slog.Logger, opts ...Option) *Runner {
	r := &Runner{js: js, cfg: cfg.withDefaults(), log: log.With("consumer", cfg.Name)}
	for _, o := range opts {
		o(r)
	}
	// Recover inside Classify: a panic in decoding, in the caller's
	// middleware or in the handler is an error like any other.
	mws := []Middleware{r.metrics.Middleware(r.cfg.Stream, r.cfg.Name),
		GiveUpAfter(r.cfg.MaxDeliver, r.giveUp), Classify(r.cfg.Backoff), Recover, Decode, LogSaga}
	mws = append(mws, r.inner...)
	r.pipeline = Chain(h, mws...)
	return r
}

// Ready reports whether the runner is consuming: its consumer exists and
// messages are being pulled from it. It is false before Run, while a lost
// consumer cannot be created again, and once Run returns.
func (r *Runner) Ready() bool { return r.ready.Load() }

// AllReady reports whether runners is not nil and each of them is Ready: a
// service's readiness, given the runners of its running Run or nil.
func AllReady(runners *[]*Runner) bool {
	if runners == nil {
		return false
	}
	for _, r := range *runners {
		if !r.Ready() {
			return false
		}
	}
	return true
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
		Replicas:      c.Replicas,
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
	if c.OrderBy != nil {
		s, err := r.js.Stream(ctx, c.Stream)
		if err != nil {
			return nil, fmt.Errorf("look up stream %s: %w", c.Stream, err)
		}
		if p := s.CachedInfo().Config.Retention; p != jetstream.WorkQueuePolicy {
			return nil, fmt.Errorf("consumer %s keeps order per key, which needs a work queue, and stream %s has retention %s", c.Name, c.Stream, p)
		}
		r.fence.use(s)
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
	r.ready.Store(false) // no longer pulling, only draining
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
