// Package phase runs a phase service (precheck, backup, deploy, verify): it
// consumes the commands for the targets the instance serves and reports on
// each step, so that the service itself is only an Executor.
//
// What it guarantees around the executor:
//   - one durable consumer per instance, over its targets' command subjects
//     (named by events.TargetsConsumer: instances serving the same targets
//     share it), and one follower of its lost messages; commands of one
//     target run one at a time in stream order, whichever instance holds
//     an earlier one and even when it comes back as a redelivery (see
//     consumer.Config.OrderBy), so a roll-back never overtakes the apply it
//     undoes; commands of different targets run at once, up to the
//     consumer's Concurrency;
//   - a command is executed at least once per step id, and once recorded
//     not again: the result is recorded in the DoneBucket before it is
//     published, and a redelivered command is answered from the record
//     (published again under the same id). A crash between executing and
//     recording, an error returned, or a record expired from the bucket
//     executes it again, hence idempotent executors (see Executor);
//   - a forward command that arrives after its NotAfter is not executed, and
//     is reported failed as expired;
//   - started, progress and final reports are published to EVENTS with
//     deterministic ids;
//   - an executor that keeps returning errors is given up after the last
//     delivery, and the step reported failed, rather than left to time out;
//   - each target is announced in the registry of targets (package fleet)
//     from start-up, refreshed every third of its TTL, and withdrawn when
//     the instance stops.
package phase

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/fleet"
	"github.com/upshift/upshift/pkg/streams"
)

// Executor performs the steps of one phase service. What the framework
// relies on, and phasetest.Run checks against every implementation:
//
//   - Idempotent per step id: Execute may be called again with the same
//     command (after a crash before the result was recorded, after an
//     error, after an interrupted run), and the second call must succeed
//     where the first did and leave the target as one call would. A
//     compensation may also find its forward step never ran, half ran or
//     was already undone.
//   - A verdict on the target is an Outcome: Success, or Failure with a
//     short machine-readable Reason (lower_snake_case) and the error. Such
//     a failure is permanent: it is recorded and fails the saga. An error
//     returned means "not done, try again": the command is redelivered with
//     back-off and, after the last delivery, reported failed as gave_up.
//     So a transient problem (a download interrupted) is an error, and a
//     broken target or package is a Failure.
//   - A target the instance does not know is Failure(events.ReasonUnknown).
//   - ctx ends when the instance shuts down past its grace: Execute must
//     then return soon, and must not report the interruption as a Failure;
//     it returns ctx's error unless it reached a true verdict.
//   - progress may be called any number of times while Execute runs, never
//     after it returns (the step is reported by then). It proves the step
//     alive to the coordinator's watchers; it does not extend a deadline.
//   - Execute is called for different targets at once, and for one target
//     one command at a time.
//   - The Outcome must fit in one report event (events.MaxEventSize): bound
//     what goes into Output and Report.
//   - The framework, not the executor, refuses a forward command past its
//     NotAfter and an action the service does not support; the executor
//     may use cmd.Deadline to report before the coordinator times the step
//     out (verify does).
type Executor interface {
	// Execute performs cmd on its target and returns how it ended, or an
	// error to have it tried again.
	Execute(ctx context.Context, cmd events.Command, progress Progress) (Outcome, error)
}

// Recoverer is an Executor that can leave a target half done when its
// process dies (a release stopped and not started again): Recover, called
// once at start-up before any command is taken, finishes or undoes that at
// once, rather than when the interrupted command is delivered again an ack
// wait later. Its error is logged; the service starts all the same.
type Recoverer interface {
	Recover(ctx context.Context) error
}

// ExecutorFunc adapts a function to Executor.
type ExecutorFunc func(ctx context.Context, cmd events.Command, progress Progress) (Outcome, error)

// Execute implements Executor.
func (f ExecutorFunc) Execute(ctx context.Context, cmd events.Command, p Progress) (Outcome, error) {
	return f(ctx, cmd, p)
}

// Progress reports how a step is going; it also proves the step alive.
type Progress func(message string)

// Outcome is how a step ended.
type Outcome struct {
	Failed bool
	// Reason is a short machine-readable cause, e.g. "digest_mismatch".
	Reason string
	Error  string
	Output map[string]string
	Report []events.ReportLine
}

// Success is a successful outcome.
func Success(output map[string]string, report ...events.ReportLine) Outcome {
	return Outcome{Output: output, Report: report}
}

// Failure is a failed outcome.
func Failure(reason string, err error, report ...events.ReportLine) Outcome {
	return Outcome{Failed: true, Reason: reason, Error: err.Error(), Report: report}
}

// Config of a phase service instance.
type Config struct {
	// Service is the phase the instance serves.
	Service events.Phase
	// Instance names this process in event sources, e.g. "deploy@host-1".
	Instance string
	// Targets served by this instance.
	Targets []string
	// Actions the executor supports; any other is reported unsupported.
	Actions []events.Action
	// Consumer tunes the instance's consumer (AckWait, MaxDeliver, Backoff,
	// Grace, Concurrency, MaxAckPending, Replicas); stream, name, filters
	// and order are set here. Concurrency defaults to DefaultConcurrency.
	Consumer consumer.Config
	// Streams configures provisioning.
	Streams streams.Config
	// Scrub removes the instance's secrets from what its executor reports;
	// nil: nothing to remove.
	Scrub Scrub
	// Host names the machine in the registry of targets; default its
	// host name.
	Host string
	// Describe gives a target's labels and installed version for the
	// registry of targets, read at every heartbeat; nil: neither.
	Describe func(target string) (labels map[string]string, version string)
	// StartedAfter is how long a step runs before its started report is
	// sent; default DefaultStartedAfter, negative at once.
	StartedAfter time.Duration
}

// DefaultStartedAfter is how long a step runs before it is reported
// started. A step done sooner is reported once, by its result, which
// carries its start and run as the started report would have: a report,
// a store write of the saga and an event fewer for each quick step (most
// prechecks and verifications), and none a person watching would miss.
// A step's progress, or its run ending in error, sends the started report
// first if it was not sent yet, so that a step is not seen to progress
// before it started (unless the started report is being sent, held while
// JetStream does not answer: progress does not wait for it; the result
// does).
const DefaultStartedAfter = 200 * time.Millisecond

// Service runs a phase service.
type Service struct {
	js       jetstream.JetStream
	cfg      Config
	exec     Executor
	log      *slog.Logger
	metrics  *Metrics
	consumer *consumer.Metrics
	done     jetstream.KeyValue
	// runner is that of a running Run, nil otherwise.
	runner atomic.Pointer[consumer.Runner]
}

// DefaultConcurrency is how many commands an instance runs at once, each
// for another target, unless its consumer's Concurrency says otherwise.
const DefaultConcurrency = 16

// New returns a service; Run starts it.
func New(js jetstream.JetStream, cfg Config, exec Executor, log *slog.Logger, reg prometheus.Registerer) *Service {
	if cfg.Instance == "" {
		cfg.Instance = string(cfg.Service)
	}
	if cfg.Host == "" {
		cfg.Host, _ = os.Hostname()
	}
	cfg.Scrub = cfg.Scrub.or()
	if cfg.StartedAfter == 0 {
		cfg.StartedAfter = DefaultStartedAfter
	}
	s := &Service{js: js, cfg: cfg, exec: exec, log: log.With("service", cfg.Service),
		metrics: NewMetrics(reg), consumer: consumer.NewMetrics(reg)}
	s.metrics.serve(cfg.Service, cfg.Actions)
	return s
}

// Ready reports whether the instance's consumer is being consumed.
func (s *Service) Ready() bool {
	r := s.runner.Load()
	return r != nil && r.Ready()
}

// ConsumerName is the durable consumer on COMMANDS the service consumes.
func (s *Service) ConsumerName() string { return events.TargetsConsumer(s.cfg.Service, s.cfg.Targets) }

// Run provisions the streams and buckets the service needs, then consumes
// the commands of every target until ctx is cancelled.
func (s *Service) Run(ctx context.Context) error {
	if len(s.cfg.Targets) == 0 {
		return errors.New("phase: no targets to serve")
	}
	if err := streams.Ensure(ctx, s.js, s.cfg.Streams, events.StreamCommands, events.StreamEvents, events.StreamDeadLetter, events.StreamAdvisories); err != nil {
		return err
	}
	done, err := streams.EnsureBucket(ctx, s.js, s.cfg.Streams, streams.DoneBucket, streams.DoneTTL)
	if err != nil {
		return err
	}
	s.done = done
	if r, ok := s.exec.(Recoverer); ok {
		if err := r.Recover(ctx); err != nil {
			s.log.Error("recovery at start-up failed; the redelivered commands will finish the job", "err", err)
		}
	}
	cc := s.cfg.Consumer
	cc.Stream, cc.Name = events.StreamCommands, s.ConsumerName()
	cc.Filters = make([]string, 0, len(s.cfg.Targets))
	for _, t := range s.cfg.Targets {
		if f := events.CommandFilter(s.cfg.Service, t); !slices.Contains(cc.Filters, f) {
			cc.Filters = append(cc.Filters, f)
		}
	}
	service := s.cfg.Service
	cc.OrderBy = func(subject string) string { return events.CommandFilter(service, events.CommandTarget(subject)) }
	if cc.Concurrency <= 0 {
		cc.Concurrency = DefaultConcurrency
	}
	if cc.MaxAckPending > 0 {
		// Held back behind an earlier command of its target, a command
		// takes a slot of MaxAckPending but no handler.
		cc.MaxAckPending = max(cc.MaxAckPending, cc.Concurrency)
	}
	runner := consumer.New(s.js, cc, s.handle, s.log, consumer.WithGiveUp(s.giveUp), consumer.WithMetrics(s.consumer))
	if err := s.ensure(ctx, runner, cc); err != nil {
		return err
	}
	// Announced once the consumers exist and before the service says it
	// is ready, so a request accepted meanwhile finds its commands queued.
	registry, ttl, err := streams.EnsureTargets(ctx, s.js, s.cfg.Streams)
	if err != nil {
		return err
	}
	announcer := fleet.NewAnnouncer(registry, ttl, s.entries, s.log)
	if err := announcer.Announce(ctx); err != nil {
		return err
	}
	s.runner.Store(runner)
	defer s.runner.Store(nil)
	s.log.Info("serving", "targets", s.cfg.Targets, "consumer", cc.Name)
	var wg sync.WaitGroup
	var aerr error
	// Withdrawn as soon as the instance stops, while it drains: a command
	// sent now would wait for it to come back.
	wg.Go(func() { aerr = announcer.Run(ctx) })
	err = runner.Run(ctx)
	wg.Wait()
	return errors.Join(aerr, err)
}

// entries are the instance's announcements, one per target.
func (s *Service) entries() []fleet.Entry {
	out := make([]fleet.Entry, 0, len(s.cfg.Targets))
	for _, t := range s.cfg.Targets {
		e := fleet.Entry{Target: t, Service: string(s.cfg.Service), Instance: s.cfg.Instance, Host: s.cfg.Host}
		if s.cfg.Describe != nil {
			e.Labels, e.Version = s.cfg.Describe(t)
		}
		out = append(out, e)
	}
	return out
}

func (s *Service) handle(ctx context.Context, d *consumer.Delivery) error {
	var cmd events.Command
	if err := events.Open(d.Event(), events.TypeCommand, &cmd); err != nil {
		return err
	}
	log := s.log.With("saga", cmd.Saga, "step", cmd.Step)
	var prev jetstream.KeyValueEntry
	err := s.hold(ctx, log, "look up the step's record", func() error {
		var err error
		prev, err = s.done.Get(ctx, cmd.Step)
		return err
	})
	if err == nil {
		// Done before: answer again from the record, do not execute again.
		s.metrics.command(s.cfg.Service, s.action(cmd), "duplicate")
		log.Info("command already executed; re-publishing its result")
		return s.publishRecord(ctx, prev.Value())
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("look up %s: %w", cmd.Step, err)
	}

	var out Outcome
	started := time.Now()
	run := int(d.NumDelivered())
	switch {
	case cmd.Phase != s.cfg.Service || !s.supports(cmd.Action):
		out = Failure(events.ReasonUnsupported, fmt.Errorf("%s does not perform %s %s", s.cfg.Instance, cmd.Phase, cmd.Action))
	case !cmd.NotAfter.IsZero() && started.After(cmd.NotAfter):
		out = Failure(events.ReasonExpired, fmt.Errorf("arrived %s after its deadline; not executed",
			started.Sub(cmd.NotAfter).Round(time.Millisecond)))
	default:
		start, err := s.startReport(ctx, cmd, run, started, log)
		if err != nil {
			return err
		}
		var n atomic.Int32
		progress := func(msg string) {
			start.now()
			if err := s.report(ctx, cmd, events.StatusProgress, run, int(n.Add(1)), s.cfg.Scrub(msg), started); err != nil {
				log.Warn("progress report failed", "err", err)
			}
		}
		defer start.stop() // and if the executor panics
		out, err = s.exec.Execute(ctx, cmd, progress)
		if err != nil {
			// Reported started, then its last word (progress, below).
			s.metrics.command(s.cfg.Service, s.action(cmd), "error")
			// Logged, retried, maybe dead-lettered and reported: scrubbed.
			err = s.cfg.Scrub.error(err)
			if ctx.Err() == nil {
				// The run's last word, so that the step shows why it ran
				// again. Not when shutting down: the interruption is ours.
				progress(fmt.Sprintf("run %d ended in error, to be tried again: %v", run, err))
			}
			return err
		}
		start.stop() // done: its result says when it started
	}
	return s.finish(ctx, cmd, out, run, started, log)
}

// startReport is a step's started report, sent once: by its timer
// (Config.StartedAfter), or by the step's first progress, whichever comes
// first; never once the step is done (stop).
type startReport struct {
	mu      sync.Mutex
	done    bool          // sent or being sent, or no longer to be
	sending chan struct{} // closed when the send is over
	timer   *time.Timer
	send    func()
}

// startReport arms the started report of a run of cmd; with StartedAfter
// negative it is sent before this returns, and its error returned.
func (s *Service) startReport(ctx context.Context, cmd events.Command, run int, started time.Time, log *slog.Logger) (*startReport, error) {
	send := func() error {
		return s.hold(ctx, log, "report the step started", func() error {
			return s.report(ctx, cmd, events.StatusStarted, run, 0, "", started)
		})
	}
	if s.cfg.StartedAfter < 0 {
		return &startReport{done: true}, send()
	}
	r := &startReport{send: func() {
		if err := send(); err != nil {
			// Its progress or result says it started all the same.
			log.Warn("started report failed", "err", err)
		}
	}}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timer = time.AfterFunc(s.cfg.StartedAfter, r.now)
	return r, nil
}

// now sends the report unless it was sent, is being sent, or was stopped.
// It does not wait for a send under way (JetStream not answering holds
// one for up to Hold): a progress report may then go first.
func (r *startReport) now() {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return
	}
	r.done = true
	r.timer.Stop()
	r.sending = make(chan struct{})
	r.mu.Unlock()
	defer close(r.sending)
	r.send()
}

// stop keeps the report from being sent from now on; a send under way is
// waited for, so that it goes before the step's result.
func (r *startReport) stop() {
	r.mu.Lock()
	r.done = true
	if r.timer != nil {
		r.timer.Stop()
	}
	sending := r.sending
	r.mu.Unlock()
	if sending != nil {
		<-sending
	}
}

// finish records the outcome, then publishes it. Recording first means a
// crash in between is repaired by the redelivery, from the record.
func (s *Service) finish(ctx context.Context, cmd events.Command, out Outcome, run int, started time.Time, log *slog.Logger) error {
	out = s.cfg.Scrub.outcome(out)
	status := events.StatusSucceeded
	if out.Failed {
		status = events.StatusFailed
	}
	env, err := s.result(cmd, status, run, 0, out, "", started, time.Now())
	if err != nil {
		return err
	}
	b, err := events.Encode(env)
	if err != nil {
		return err
	}
	if b, err = s.record(ctx, cmd.Step, b, log); err != nil {
		return err
	}
	result := string(status)
	if out.Reason == events.ReasonExpired || out.Reason == events.ReasonUnsupported || out.Reason == events.ReasonGaveUp {
		result = out.Reason
	}
	s.metrics.command(s.cfg.Service, s.action(cmd), result)
	s.metrics.duration(s.cfg.Service, s.action(cmd), status, time.Since(started))
	log.Info("step "+string(status), "target", cmd.Target, "action", cmd.Action, "reason", out.Reason, "error", out.Error,
		"took", time.Since(started).Round(time.Millisecond))
	return s.publishRecord(ctx, b)
}

func (s *Service) publishRecord(ctx context.Context, b []byte) error {
	env, err := events.Decode(b)
	if err != nil {
		return fmt.Errorf("recorded result: %w", err)
	}
	var r events.StepResult
	if err := events.Open(env, events.TypeStep, &r); err != nil {
		return fmt.Errorf("recorded result: %w", err)
	}
	m := bus.Message{ID: env.ID, Subject: events.ResultSubject(r.Saga, r.Phase, r.Status), Data: b}
	return s.hold(ctx, s.log.With("saga", r.Saga, "step", r.Step), "publish the step's result", func() error {
		return bus.Send(ctx, s.js, m)
	})
}

// Hold bounds how long one JetStream call of a command (its record's
// look-up, its started report, its result's publish) is tried again while
// JetStream does not answer (bus.Unanswered), before the error is returned
// and the message given back to be delivered again.
var Hold = 5 * time.Minute

// holdBackoff is the first delay of a hold's tries, doubled up to
// holdBackoffMax.
const (
	holdBackoff    = 50 * time.Millisecond
	holdBackoffMax = 2 * time.Second
)

// hold calls op until it succeeds, fails otherwise than by JetStream not
// answering, ctx ends, or Hold has passed. The message is kept meanwhile,
// alive by the runner's heartbeats: without this, an EVENTS stream without
// a leader for a while (a cluster node stopped) failed each delivery's
// started report in turn, used up MaxDeliver in seconds and dead-lettered
// commands that never ran. An outage so costs a message at most one
// delivery. Every op is one that may be repeated: a look-up, or a publish
// whose message id makes a repeat a duplicate.
func (s *Service) hold(ctx context.Context, log *slog.Logger, what string, op func() error) error {
	delay, deadline := holdBackoff, time.Now().Add(Hold)
	for tries := 1; ; tries++ {
		err := op()
		if err == nil {
			if tries > 1 {
				log.Info("JetStream answers again", "op", what, "tries", tries)
			}
			return nil
		}
		if !bus.Unanswered(err) || ctx.Err() != nil || time.Now().Add(delay).After(deadline) {
			return err
		}
		if tries == 1 {
			log.Warn("JetStream does not answer: holding the command and trying again", "op", what, "err", err, "for_at_most", Hold)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, holdBackoffMax)
	}
}

func (s *Service) report(ctx context.Context, cmd events.Command, status events.Status, run, n int, msg string, started time.Time) error {
	env, err := s.result(cmd, status, run, n, Outcome{}, msg, started, time.Time{})
	if err != nil {
		return err
	}
	return bus.Publish(ctx, s.js, events.ResultSubject(cmd.Saga, cmd.Phase, status), env)
}

func (s *Service) result(cmd events.Command, status events.Status, run, n int, out Outcome, msg string, started, finished time.Time) (events.Envelope, error) {
	r := events.StepResult{
		Step: cmd.Step, Saga: cmd.Saga, Phase: cmd.Phase, Action: cmd.Action, Target: cmd.Target,
		Attempt: cmd.Attempt, Run: run, Status: status, Reason: out.Reason, Error: out.Error, Message: msg,
		Output: out.Output, Report: out.Report, StartedAt: started, FinishedAt: finished,
	}
	return events.New(events.RunResultID(cmd.Step, status, run, n), events.TypeStep, "upshift/"+s.cfg.Instance,
		cmd.Saga, cmd.Attempt, time.Now(), r)
}

// giveUp reports the step failed once its command has used every delivery.
func (s *Service) giveUp(ctx context.Context, d *consumer.Delivery, cause error) {
	var cmd events.Command
	if err := events.Open(d.Event(), events.TypeCommand, &cmd); err != nil {
		return
	}
	out := Failure(events.ReasonGaveUp, fmt.Errorf("gave up after %d deliveries: %w", d.NumDelivered(), cause))
	if err := s.finish(ctx, cmd, out, 0, time.Now(), s.log.With("saga", cmd.Saga, "step", cmd.Step)); err != nil {
		s.log.Error("cannot report a given-up step; the saga will time it out", "step", cmd.Step, "err", err)
	}
}

// action is the command's action as a metric label: only known values,
// whatever a message says.
func (s *Service) action(cmd events.Command) events.Action {
	if !s.supports(cmd.Action) {
		return "other"
	}
	return cmd.Action
}

func (s *Service) supports(a events.Action) bool {
	for _, x := range s.cfg.Actions {
		if x == a {
			return true
		}
	}
	return false
}

// recordPatience bounds how long an executed step's record is retried.
const recordPatience = 30 * time.Second

// record stores what an executed step did and returns the record that
// stands: ours, or another instance's made first. A failure is retried
// with back-off for a while (the bucket's leader may be moving to another
// node of a cluster): given up, the redelivered command would execute the
// step again.
func (s *Service) record(ctx context.Context, step string, b []byte, log *slog.Logger) ([]byte, error) {
	delay, deadline := 50*time.Millisecond, time.Now().Add(recordPatience)
	for {
		_, err := s.done.Create(ctx, step, b)
		if err == nil {
			return b, nil
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			// Someone recorded it first (or our lost answer's write
			// landed); the stored record is the answer.
			prev, err := s.done.Get(ctx, step)
			if err != nil {
				return nil, fmt.Errorf("load record of %s: %w", step, err)
			}
			return prev.Value(), nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("record %s: %w", step, err)
		}
		log.Warn("cannot record the executed step; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("record %s: %w", step, err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}
