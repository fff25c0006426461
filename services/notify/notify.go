// Package notify is the notify service: it tells teams what happens to their
// sagas. It runs two durable consumers:
//
//   - the router reads the coordinator's saga events from EVENTS (every
//     state change, failed steps, approvals, late results) and publishes one
//     Notice per team on upshift.notify.<team>.<saga>.<kind>, with a
//     severity and a one-line summary. That subject is how a team
//     subscribes; its id is derived from the saga event's, so a redelivered
//     saga event is dropped by the NOTIFY stream's duplicate window.
//   - the deliverer reads NOTIFY and hands each notice to every configured
//     Channel, once per notice and channel as a rule: a record in the
//     DoneBucket, written after a successful delivery, answers a
//     redelivery. A crash between a delivery and its record delivers again
//     (at least once), so a channel passes the notice's stable id on for
//     its receiver to de-duplicate by. A channel error is retried with
//     exponential back-off and jitter (Backoff) and, when the channel
//     refuses the notice for good or after the last delivery, the notice is
//     dead-lettered for that channel alone, and counted.
//
// The channels: the log channel (one log line per notice), signed webhooks
// (a CloudEvent, Standard Webhooks signature), Slack-compatible incoming
// webhooks and mail over SMTP. Routes (a RoutesFile) say which channels get
// which notices, per team, kind and severity; without them every channel
// gets every notice.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/promreg"
	"github.com/upshift/upshift/pkg/streams"
)

// Durable consumer names, shared by every instance.
const (
	RouterConsumer  = "notify-router"
	DeliverConsumer = "notify-deliver"
)

// RouterSince is how far back the router starts when it is first created:
// a notify deployed beside a year of history tells teams of the last few
// minutes, not of the whole year. Once created, it resumes where it was.
const RouterSince = 10 * time.Minute

// Config of a notify instance.
type Config struct {
	// Instance names this process in event sources, e.g. "notify@host-1".
	Instance string
	// Channels receive the notices Routes send them. Names must be unique
	// and stable: a delivery is recorded under its channel's name.
	Channels []Channel
	// Routes say which channels each notice goes to; the zero Router sends
	// every notice to every channel.
	Routes Router
	// Retry is the back-off between deliveries of a notice that a channel
	// failed; the consumer's MaxDeliver bounds them.
	Retry Backoff
	// Consumer tunes both consumers (AckWait, MaxDeliver, Backoff, Grace,
	// Concurrency); stream, name and filters are set here.
	Consumer consumer.Config
	// Streams configures provisioning.
	Streams streams.Config
}

// Service runs the router and the deliverer.
type Service struct {
	js       jetstream.JetStream
	cfg      Config
	log      *slog.Logger
	sent     *prometheus.CounterVec
	consumer *consumer.Metrics
	done     jetstream.KeyValue
	// runners are those of a running Run, nil otherwise.
	runners atomic.Pointer[[]*consumer.Runner]
}

// Results counted by upshift_notifications_total.
const (
	ResultDelivered = "delivered"
	ResultDuplicate = "duplicate"
	ResultFailed    = "failed"
	// ResultDeadLettered counts notices a channel gave up on: refused for
	// good, or failed on the last delivery.
	ResultDeadLettered = "dead_lettered"
)

// New returns a service; Run starts it.
func New(js jetstream.JetStream, cfg Config, log *slog.Logger, reg prometheus.Registerer) *Service {
	if cfg.Instance == "" {
		cfg.Instance = "notify"
	}
	sent := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "upshift_notifications_total",
		Help: "Notices handed to a channel, by result: delivered, duplicate (handled before, not again), failed (an attempt that failed), dead_lettered (given up).",
	}, []string{"channel", "result"}))
	// Every channel's series at zero from the start.
	for _, ch := range cfg.Channels {
		for _, r := range []string{ResultDelivered, ResultDuplicate, ResultFailed, ResultDeadLettered} {
			sent.WithLabelValues(ch.Name(), r)
		}
	}
	return &Service{js: js, cfg: cfg, log: log.With("service", "notify"), sent: sent, consumer: consumer.NewMetrics(reg)}
}

// Ready reports whether both consumers are being consumed.
func (s *Service) Ready() bool { return consumer.AllReady(s.runners.Load()) }

// Run provisions the streams and the bucket, then runs both consumers until
// ctx is cancelled.
func (s *Service) Run(ctx context.Context) error {
	if err := s.checkChannels(); err != nil {
		return err
	}
	if err := streams.Ensure(ctx, s.js, s.cfg.Streams, events.StreamEvents, events.StreamNotify, events.StreamDeadLetter, events.StreamAdvisories); err != nil {
		return err
	}
	done, err := streams.EnsureBucket(ctx, s.js, s.cfg.Streams, streams.DoneBucket, streams.DoneTTL)
	if err != nil {
		return err
	}
	s.done = done
	runners := []*consumer.Runner{
		s.runner(events.StreamEvents, RouterConsumer, []string{events.SagaFilter()}, RouterSince, s.route),
		s.runner(events.StreamNotify, DeliverConsumer, events.NotifySubjects, 0, s.deliver),
	}
	for _, r := range runners {
		if _, err := r.Ensure(ctx); err != nil {
			return err
		}
	}
	s.runners.Store(&runners)
	defer s.runners.Store(nil)
	s.log.Info("serving", "channels", s.channelNames())
	errs := make([]error, len(runners))
	var wg sync.WaitGroup
	for i, r := range runners {
		wg.Go(func() { errs[i] = r.Run(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Service) runner(stream, name string, filters []string, since time.Duration, h consumer.Handler) *consumer.Runner {
	cc := s.cfg.Consumer
	cc.Stream, cc.Name, cc.Filters, cc.Since = stream, name, append([]string(nil), filters...), since
	return consumer.New(s.js, cc, h, s.log, consumer.WithMetrics(s.consumer))
}

func (s *Service) checkChannels() error {
	seen := map[string]bool{}
	for _, c := range s.cfg.Channels {
		switch n := c.Name(); {
		case n == "":
			return errors.New("notify: a channel has no name")
		case seen[n]:
			return fmt.Errorf("notify: two channels named %q; deliveries are recorded by name", n)
		default:
			seen[n] = true
		}
	}
	for _, n := range s.cfg.Routes.names() {
		if !seen[n] {
			return fmt.Errorf("notify: a route names channel %q, which is not configured", n)
		}
	}
	return nil
}

func (s *Service) channelNames() []string {
	out := make([]string, 0, len(s.cfg.Channels))
	for _, c := range s.cfg.Channels {
		out = append(out, c.Name())
	}
	return out
}
