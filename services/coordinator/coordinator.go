// Package coordinator drives upgrade sagas: it turns each request into a
// saga, sends the phase services their commands, listens to their reports
// and to the deadlines it set, and rolls back when a phase fails or times
// out. The saga's logic is the pure state machine of pkg/saga; this package
// does the I/O around it.
//
// Every input arrives as a JetStream message (REQUESTS: requests and
// operators' decisions; EVENTS: phase reports; TIMERS: deadlines, published
// as scheduled messages) and is acknowledged only after its transition is
// stored and its outbox published. Several instances may run against one
// store: compare-and-set keeps each transition single, deterministic message
// ids keep each command single.
//
// Status, history and decisions are served over NATS (micro service
// "upshift-coordinator") and, by package httpapi, over HTTP. Policy decides
// per environment on approvals, maintenance windows and the rehearsal gate.
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/fleet"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// DefaultRelayInterval is how often the relay looks for messages left
// unsent in the outbox by default.
const DefaultRelayInterval = 15 * time.Second

// DefaultConcurrency is how many inputs an instance handles at once by
// default. A transition mostly waits (for the store, then for the acks of
// its outbox), so more at once is more sagas per second until the CPU or
// the store is busy. Measured on the 2-core development machine (make
// bench-sagas, medians of three alternated runs): at 64, one-target sagas
// ran 1.26 to 1.29 times as fast on KV, and 0.95 to 0.96 times as fast on
// PostgreSQL, whose database is then the limit. 8 suits both;
// --concurrency raises it where the store keeps up. (At 64 with a starved
// CPU two fault tests once saw steps executed twice: that was a phase
// service running a redelivered command beside its first copy, fixed in
// package consumer's fence, not a limit of the coordinator.)
const DefaultConcurrency = 8

// Config of a coordinator instance.
type Config struct {
	// Instance names this process in event sources.
	Instance string
	Store    sagastore.Store
	Policy   Policy
	Streams  streams.Config
	// Consumer tunes the three consumers (AckWait, MaxDeliver, Backoff,
	// Grace); names, filters and concurrency are set here.
	Consumer consumer.Config
	// Concurrency is how many inputs this instance handles at once.
	// Default DefaultConcurrency.
	Concurrency int
	// RelayInterval is how often leftovers in the outbox, and deadlines
	// passed unhandled, are looked for. Default 15s.
	RelayInterval time.Duration
	// OverdueGrace is how long past its deadline a saga may go unhandled
	// before the sweep ticks it. Default 30s.
	OverdueGrace time.Duration
	// MarkDelay is how long the mark of published messages as sent waits
	// to go with the saga's next change. Default DefaultMarkDelay;
	// negative: marked at once, in a write of its own.
	MarkDelay time.Duration
	// Lease, if set, elects the one instance that does the background
	// work: the relay, the overdue sweep, the in-flight gauge's count. Nil:
	// this instance does it, alone or beside others that do too.
	Lease sagastore.Lease
	// Now is the clock; tests may set it.
	Now func() time.Time
}

// Coordinator is one coordinator instance.
type Coordinator struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	store   sagastore.Store
	policy  Policy
	cfg     Config
	log     *slog.Logger
	engine  *engine
	cmetric *consumer.Metrics
	now     func() time.Time
	// registry is the registry of targets, set by Run.
	registry jetstream.KeyValue
	// runners are those of a running Run, nil otherwise.
	runners atomic.Pointer[[]*consumer.Runner]
}

// New returns a coordinator; Run starts it.
func New(nc *nats.Conn, js jetstream.JetStream, cfg Config, log *slog.Logger, reg prometheus.Registerer) *Coordinator {
	if cfg.Instance == "" {
		cfg.Instance = "coordinator"
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.RelayInterval <= 0 {
		cfg.RelayInterval = DefaultRelayInterval
	}
	if cfg.OverdueGrace <= 0 {
		cfg.OverdueGrace = 30 * time.Second
	}
	if cfg.MarkDelay == 0 {
		cfg.MarkDelay = DefaultMarkDelay
	}
	now := cfg.Now
	if now == nil {
		now = func() time.Time { return time.Now().UTC() }
	}
	log = log.With("service", "coordinator")
	c := &Coordinator{nc: nc, js: js, store: cfg.Store, policy: cfg.Policy, cfg: cfg, log: log, now: now,
		cmetric: consumer.NewMetrics(reg)}
	c.engine = &engine{store: cfg.Store, js: js, log: log, source: "upshift/" + cfg.Instance, now: now,
		metrics: NewMetrics(reg, cfg.Store, log)}
	c.engine.marks = marks{delay: cfg.MarkDelay, mark: c.engine.markSent}
	return c
}

// Leader reports whether this instance does the background work now.
func (c *Coordinator) Leader() bool { return c.engine.metrics.leading() }

// Ready reports whether the instance is consuming each of its inputs.
func (c *Coordinator) Ready() bool { return c.Check() == nil }

// storeProbe bounds the store's answer to a readiness probe.
const storeProbe = 2 * time.Second

// Check says why the coordinator is not ready, if it is not: a consumer
// not running, or a store that does not answer (a coordinator that cannot
// store a transition cannot move any saga on).
func (c *Coordinator) Check() error {
	if !consumer.AllReady(c.runners.Load()) {
		return errors.New("coordinator: consumers not running")
	}
	if p, ok := c.store.(interface{ Ping(context.Context) error }); ok {
		ctx, cancel := context.WithTimeout(context.Background(), storeProbe)
		defer cancel()
		if err := p.Ping(ctx); err != nil {
			return fmt.Errorf("coordinator: store: %w", err)
		}
	}
	return nil
}

// Run provisions the streams, consumes until ctx is cancelled, drains and
// returns.
func (c *Coordinator) Run(ctx context.Context) error {
	if err := streams.Ensure(ctx, c.js, c.cfg.Streams, streams.All...); err != nil {
		return err
	}
	registry, ttl, err := streams.EnsureTargets(ctx, c.js, c.cfg.Streams)
	if err != nil {
		return err
	}
	c.registry, c.engine.registry, c.engine.ttl = registry, registry, ttl
	// A view of the registry spares most requests and commands a listing
	// of it (a consumer made and removed on the server each). Without one,
	// every check asks the registry.
	if view, err := fleet.Follow(ctx, registry, ttl); err != nil {
		c.log.Warn("the registry of targets will be listed at every check", "err", err)
	} else {
		c.engine.view = view
	}
	mk := func(name, stream string, filters []string, h consumer.Handler) *consumer.Runner {
		cc := c.cfg.Consumer
		cc.Stream, cc.Name, cc.Filters, cc.Concurrency = stream, name, filters, c.cfg.Concurrency
		return consumer.New(c.js, cc, c.patient(h), c.log, consumer.WithMetrics(c.cmetric))
	}
	var results []string
	for _, p := range events.Phases {
		results = append(results, events.ResultFilter(p))
	}
	runners := []*consumer.Runner{
		mk("coordinator-requests", events.StreamRequests, events.RequestSubjects, c.onRequest),
		mk("coordinator-results", events.StreamEvents, results, c.onResult),
		mk("coordinator-timers", events.StreamTimers, []string{events.TimerFireFilter()}, c.onTimer),
	}
	for _, r := range runners {
		if _, err := r.Ensure(ctx); err != nil {
			return err
		}
	}
	api, err := c.serveAPI(c.nc)
	if err != nil {
		return err
	}
	defer func() { _ = api.Stop() }()

	c.runners.Store(&runners)
	defer c.runners.Store(nil)
	// Deferred marks are written after the handlers stop, before Run
	// returns and its caller closes the store.
	c.engine.marks.start(context.WithoutCancel(ctx))
	defer c.engine.marks.stop()
	c.log.Info("coordinating", "instance", c.cfg.Instance)
	var wg sync.WaitGroup
	errs := make(chan error, len(runners)+2)
	for _, r := range runners {
		wg.Go(func() { errs <- r.Run(ctx) })
	}
	if c.cfg.Lease == nil {
		c.engine.metrics.lead(true)
	} else {
		wg.Go(func() { errs <- c.lead(ctx) })
	}
	wg.Go(func() { errs <- c.engine.relay(ctx, c.cfg.RelayInterval, c.cfg.OverdueGrace) })
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// StoreWait bounds how long a handler that failed because the store does
// not answer holds its message, waiting for the store, before giving it
// back to be delivered again.
var StoreWait = 10 * time.Minute

// patient wraps a handler: when it fails and the store does not answer (a
// database restarted, its connections cut), the message is held, kept
// alive by the runner's heartbeats, until the store answers again, and
// only then given back. An outage so costs each message one delivery, not
// one per back-off step: without this, a few minutes without PostgreSQL
// used up the deliveries of the results it held and dead-lettered them,
// and their sagas waited for their deadlines.
func (c *Coordinator) patient(h consumer.Handler) consumer.Handler {
	p, ok := c.store.(interface{ Ping(context.Context) error })
	if !ok {
		return h
	}
	return func(ctx context.Context, d *consumer.Delivery) error {
		err := h(ctx, d)
		if err == nil {
			return nil
		}
		wait := 200 * time.Millisecond
		deadline := time.Now().Add(StoreWait)
		for logged := false; time.Now().Before(deadline); logged = true {
			pctx, cancel := context.WithTimeout(ctx, storeProbe)
			perr := p.Ping(pctx)
			cancel()
			if perr == nil {
				break
			}
			if !logged {
				c.log.Warn("store unreachable: holding the message until it answers", "err", perr, "handler_err", err)
			}
			select {
			case <-ctx.Done():
				return err
			case <-time.After(wait):
			}
			wait = min(2*wait, 5*time.Second)
		}
		return err
	}
}
