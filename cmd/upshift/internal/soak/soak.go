package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/cmd/upshift/internal/devstack"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natsembed"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/coordinatord"
)

// Config is one soak run.
type Config struct {
	// Duration of the steady load; sagas still running then are waited for
	// up to Drain.
	Duration, Drain time.Duration
	// Interval between two report lines.
	Interval time.Duration
	// Warmup is left out of the drift verdict (sagas submitted and memory
	// read before it ends).
	Warmup time.Duration
	// Rate of requests per second, FailPercent of them failing their
	// verification (and so rolled back), over Targets targets.
	Rate        float64
	FailPercent int
	Targets     int
	// Limits says how much growth is drift.
	Limits Limits
	// Log receives the services' log; nil: none.
	Log *slog.Logger
	// Coordinator are the coordinator's settings (its flags).
	Coordinator coordinatord.Settings

	// inject makes trouble on purpose, for the smoke test to see that the
	// verdict finds it.
	inject struct {
		// slow is added to the verification of every saga submitted in
		// the last third of the run.
		slow time.Duration
		// leak is kept in memory for every saga that ends.
		leak int
	}
}

// The version a request upgrades to says what its verification does: the
// soak's verify executor fails "-failing" (the saga rolls back) and, on
// purpose for the smoke test only, delays "-slow".
const (
	passing = "1.1"
	failing = "-failing"
	slow    = "-slow"
)

// sagaRecord is what the soak knows of one saga.
type sagaRecord struct {
	submitted, ended time.Time // ended: the terminal event's time
	fail             bool      // its verification is to fail
	state            string    // terminal state, or "invalid"
}

// soak is a running soak.
type soak struct {
	cfg   Config
	out   io.Writer
	stack *devstack.Stack
	start time.Time

	mu    sync.Mutex
	sagas map[string]*sagaRecord
	// ends are the sagas ended since the last report line.
	ends       []string
	duplicates int // terminal events seen again for an ended saga
	leaked     [][]byte
	heaps      []heapSample
}

// Run runs a soak and writes its report to out; the result says whether it
// passed.
func Run(ctx context.Context, cfg Config, out io.Writer) (Result, error) {
	dir, err := os.MkdirTemp("", "upshift-soak-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	nodes, err := natsembed.StartCluster(filepath.Join(dir, "nats"), 3)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		for _, n := range nodes {
			n.Stop()
		}
	}()
	s := &soak{cfg: cfg, out: out, sagas: map[string]*sagaRecord{}}
	names := make([]string, cfg.Targets)
	ts := map[string]targets.Target{}
	for i := range names {
		names[i] = fmt.Sprintf("soak-%02d", i)
		ts[names[i]] = targets.Target{Root: names[i]}
	}
	reg, err := targets.New(ts, dir)
	if err != nil {
		return Result{}, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	actions := map[events.Phase][]events.Action{
		events.Precheck: {events.ActionCheck}, events.Backup: {events.ActionArchive, events.ActionRestore},
		events.Deploy: {events.ActionApply, events.ActionRollback}, events.Verify: {events.ActionProbe},
	}
	var phases []service.Program
	for _, p := range events.Phases {
		phases = append(phases, phase.Program(string(p), "", &phase.Settings{Targets: reg}, nil,
			func(env service.Env, served *targets.Registry) (service.Component, error) {
				return phase.New(env.JS, phase.Config{Service: p, Instance: env.Instance, Targets: served.Names(),
					Actions: actions[p], Streams: env.Streams(), Describe: served.Describe},
					phase.ExecutorFunc(s.execute), env.Log, env.Registry), nil
			}))
	}
	s.stack, err = devstack.Start(ctx, devstack.Options{Dir: dir, URLs: natsembed.URLs(nodes), Replicas: 3,
		Phases: phases, Coordinator: cfg.Coordinator, Log: log,
		// A connection per service, as each has its own process in
		// production: one shared connection becomes a slow consumer.
		Connect: func(string) []nats.Option { return []nats.Option{nats.ReconnectWait(100 * time.Millisecond)} },
		// Creating a replicated consumer or bucket on a loaded machine
		// can take longer than the client's default 5 s: a service would
		// then stop the stack at its start.
		JetStream: []jetstream.JetStreamOpt{jetstream.WithDefaultTimeout(time.Minute)}})
	if err != nil {
		return Result{}, err
	}
	defer s.stack.Stop()
	return s.run(ctx, names)
}

// execute is every phase service's executor: instant, and a failure for
// the verification of a saga meant to fail.
func (s *soak) execute(ctx context.Context, c events.Command, _ phase.Progress) (phase.Outcome, error) {
	if c.Phase != events.Verify {
		return phase.Success(nil), nil
	}
	if strings.HasSuffix(c.Upgrade.To, slow) {
		select {
		case <-time.After(s.cfg.inject.slow):
		case <-ctx.Done():
			return phase.Outcome{}, ctx.Err()
		}
	}
	if strings.Contains(c.Upgrade.To, failing) {
		return phase.Failure("soak", errors.New("this verification fails on purpose")), nil
	}
	return phase.Success(nil), nil
}

func (s *soak) request(target string, fail bool) spec.Request {
	to := passing
	if fail {
		to += failing
	}
	if s.cfg.inject.slow > 0 && time.Since(s.start) > 2*s.cfg.Duration/3 {
		to += slow
	}
	d := spec.Duration{Duration: 2 * time.Minute}
	return spec.Request{APIVersion: spec.APIVersion, Kind: spec.KindUpgrade,
		Metadata: spec.Metadata{Name: "soak", Team: "soak", Environment: "soak"},
		Spec: spec.Spec{Software: "app", From: "1.0", To: to, Targets: []string{target},
			Artifact: spec.Artifact{URL: "file:///soak/app.tgz", Digest: "sha256:" + strings.Repeat("a", 64)},
			Timeouts: spec.Timeouts{Precheck: d, Backup: d, Deploy: d, Verify: d, Rollback: d}}}
}

func (s *soak) run(ctx context.Context, names []string) (Result, error) {
	// Every saga's end, from EVENTS: its terminal event, or the refusal of
	// its request.
	c, err := s.stack.JS.OrderedConsumer(ctx, events.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"upshift.evt.*.saga.>"}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return Result{}, err
	}
	cc, err := c.Consume(s.observe)
	if err != nil {
		return Result{}, err
	}
	defer cc.Stop()

	cfg := s.cfg
	fmt.Fprintf(s.out, "soak: 3 JetStream nodes on loopback, every stream and bucket with 3 replicas; %g requests/s for %s, "+
		"%d%% failing verification, %d targets; a line every %s\n", cfg.Rate, cfg.Duration, cfg.FailPercent, cfg.Targets, cfg.Interval)
	fmt.Fprintln(s.out, header)
	s.start = time.Now()
	// The report and the heap samples run beside the load, which they
	// must not slow down.
	stopReport := make(chan struct{})
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		report := time.NewTicker(cfg.Interval)
		defer report.Stop()
		mem := time.NewTicker(max(cfg.Interval/6, time.Second))
		defer mem.Stop()
		for line := 1; ; {
			select {
			case <-stopReport:
				return
			case <-report.C:
				s.line(ctx, fmt.Sprint(line))
				line++
			case <-mem.C:
				s.sampleHeap()
			}
		}
	}()
	defer func() {
		select {
		case <-stopReport:
		default:
			close(stopReport)
			<-reported
		}
	}()
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
	defer tick.Stop()
	end := time.After(cfg.Duration)
	limit := int(cfg.Rate*cfg.Duration.Seconds()) + 1
	// At most a few minutes of requests in flight: a system that cannot
	// keep up is reported, not buried under more.
	maxInFlight := int(cfg.Rate*180) + 10
	// Each request is submitted on its own, so that a slow publish does
	// not hold up the next; a few dozen at most wait for their ack.
	submitting := make(chan struct{}, 32)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var submitErr error
	failed := make(chan struct{})
	fail := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if submitErr == nil {
			submitErr = err
			close(failed)
		}
	}
load:
	for n := 0; ; {
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-s.stack.Done():
			return Result{}, fmt.Errorf("upshift stopped: %w", s.stack.Err())
		case <-end:
			break load
		case <-failed:
			break load
		case <-tick.C:
			if n >= limit {
				continue
			}
			if inFlight := s.inFlight(); inFlight > maxInFlight {
				fail(fmt.Errorf("%d sagas in flight after %s: upshift does not keep up with %g/s", inFlight, time.Since(s.start).Round(time.Second), cfg.Rate))
				break load
			}
			// Spread evenly: request n fails when the share so far falls
			// behind FailPercent.
			failing := (n+1)*cfg.FailPercent/100 > n*cfg.FailPercent/100
			req := s.request(names[n%len(names)], failing)
			n++
			submitting <- struct{}{}
			wg.Go(func() {
				defer func() { <-submitting }()
				at := time.Now()
				sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				id, err := s.stack.Client.Submit(sctx, req)
				if err != nil {
					fail(fmt.Errorf("submit: %w", err))
					return
				}
				s.mu.Lock()
				defer s.mu.Unlock()
				if r := s.sagas[id]; r != nil { // its end came first
					r.submitted, r.fail = at, failing
				} else {
					s.sagas[id] = &sagaRecord{submitted: at, fail: failing}
				}
			})
		}
	}
	wg.Wait()
	loadEnd := time.Now()
	s.sampleHeap()
	// What is still running ends, or is stuck.
	drain := time.After(cfg.Drain)
	wait := time.NewTicker(50 * time.Millisecond)
	defer wait.Stop()
waiting:
	for s.inFlight() > 0 {
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-drain:
			break waiting
		case <-wait.C:
		}
	}
	close(stopReport)
	<-reported
	s.line(ctx, "end")
	res := s.result(ctx, loadEnd)
	res.SubmitErr = submitErr
	res.print(s.out)
	return res, nil
}

// slowest describes the n sagas that took longest from request to end
// (s.mu held): each one's time, end, and the longest wait between two
// entries of its audit log, named by what came before and after it.
func (s *soak) slowest(ctx context.Context, n int) []string {
	type took struct {
		id  string
		lat time.Duration
	}
	var all []took
	for id, r := range s.sagas {
		if !r.submitted.IsZero() && !r.ended.IsZero() {
			all = append(all, took{id, r.ended.Sub(r.submitted)})
		}
	}
	slices.SortFunc(all, func(a, b took) int { return cmp.Compare(b.lat, a.lat) })
	var out []string
	for _, t := range all[:min(n, len(all))] {
		line := fmt.Sprintf("%s %s %s", t.id, t.lat.Round(time.Millisecond), s.sagas[t.id].state)
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		entries, err := s.stack.Client.History(hctx, t.id)
		cancel()
		switch {
		case err != nil:
			line += fmt.Sprintf(" (history: %v)", err)
		case len(entries) > 1:
			at := 1
			for i := 2; i < len(entries); i++ {
				if entries[i].At.Sub(entries[i-1].At) > entries[at].At.Sub(entries[at-1].At) {
					at = i
				}
			}
			before, after := entries[at-1], entries[at]
			line += fmt.Sprintf("; longest wait %s, at +%s, from %s %s to %s %s", after.At.Sub(before.At).Round(time.Millisecond),
				before.At.Sub(s.sagas[t.id].submitted).Round(time.Millisecond), before.Direction, before.Subject, after.Direction, after.Subject)
		}
		out = append(out, line)
	}
	return out
}

// observe records a saga's end.
func (s *soak) observe(m jetstream.Msg) {
	env, err := events.Decode(m.Data())
	if err != nil {
		return
	}
	var ev events.SagaEvent
	if events.Open(env, events.TypeSaga, &ev) != nil {
		return
	}
	state := ev.State
	switch {
	case ev.Kind == events.KindInvalid:
		state = "invalid"
	case !saga.State(ev.State).Terminal():
		return
	}
	id := ev.Saga
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.sagas[id]
	if r == nil {
		r = &sagaRecord{}
		s.sagas[id] = r
	}
	if !r.ended.IsZero() {
		s.duplicates++
		return
	}
	r.ended, r.state = env.Time, state
	s.ends = append(s.ends, id)
	if s.cfg.inject.leak > 0 {
		s.leaked = append(s.leaked, make([]byte, s.cfg.inject.leak))
	}
}

func (s *soak) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.sagas {
		if r.ended.IsZero() {
			n++
		}
	}
	return n
}

func (s *soak) sampleHeap() {
	h := readHeap()
	h.at = time.Since(s.start)
	s.mu.Lock()
	s.heaps = append(s.heaps, h)
	s.mu.Unlock()
}

const header = "line   time  submitted  succeeded  rolled_back  other  in_flight  p50_ms  p99_ms  heap_MiB  coordinator_MiB  servers_MiB  pending  ack_pending  dead_letters"

// line writes one report line: the sagas that ended since the last.
func (s *soak) line(ctx context.Context, name string) {
	h := readHeap()
	pending, ackPending := s.pending(ctx)
	dead := s.deadLetters(ctx)
	s.mu.Lock()
	ends := s.ends
	s.ends = nil
	var succeeded, rolledBack, other int
	var lat []time.Duration
	for _, id := range ends {
		r := s.sagas[id]
		switch r.state {
		case string(saga.StateSucceeded):
			succeeded++
		case string(saga.StateRolledBack):
			rolledBack++
		default:
			other++
		}
		if !r.submitted.IsZero() {
			lat = append(lat, r.ended.Sub(r.submitted))
		}
	}
	submitted, inFlight := len(s.sagas), 0
	for _, r := range s.sagas {
		if r.ended.IsZero() {
			inFlight++
		}
	}
	s.mu.Unlock()
	fmt.Fprintf(s.out, "%4s %6s %10d %10d %12d %6d %10d %7s %7s %9.1f %16.1f %12.1f %8d %12d %13d\n", name,
		time.Since(s.start).Round(time.Second), submitted, succeeded, rolledBack, other, inFlight,
		ms(lat, 0.5), ms(lat, 0.99), mib(h.total), mib(h.coordinator), mib(h.servers), pending, ackPending, dead)
}

// pending sums the upshift consumers' messages not yet delivered and not
// yet acknowledged (every durable consumer of every upshift stream; the
// soak's own reader is not durable).
func (s *soak) pending(ctx context.Context) (pending, ackPending uint64) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, name := range []string{events.StreamRequests, events.StreamCommands, events.StreamEvents, events.StreamNotify,
		events.StreamTimers, events.StreamDeadLetter, events.StreamAdvisories} {
		st, err := s.stack.JS.Stream(ctx, name)
		if err != nil {
			continue
		}
		list := st.ListConsumers(ctx)
		for c := range list.Info() {
			if c.Config.Durable != "" {
				pending += c.NumPending
				ackPending += uint64(c.NumAckPending)
			}
		}
	}
	return pending, ackPending
}

// deadLetters counts the messages in DEADLETTER.
func (s *soak) deadLetters(ctx context.Context) uint64 {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := s.stack.JS.Stream(ctx, events.StreamDeadLetter)
	if err != nil {
		return 0
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

// result judges the run: every saga ended as meant, and nothing drifted.
func (s *soak) result(ctx context.Context, loadEnd time.Time) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := Result{Duplicates: s.duplicates, DeadLetters: int(s.deadLetters(ctx))}
	warm := s.start.Add(s.cfg.Warmup)
	third := loadEnd.Sub(warm) / 3
	var first, last []time.Duration
	for id, r := range s.sagas {
		res.Submitted++
		switch {
		case r.submitted.IsZero():
			res.Unknown = append(res.Unknown, id)
			continue
		case r.ended.IsZero():
			res.Stuck = append(res.Stuck, id)
			continue
		case r.fail && r.state == string(saga.StateRolledBack), !r.fail && r.state == string(saga.StateSucceeded):
			if r.fail {
				res.RolledBack++
			} else {
				res.Succeeded++
			}
		default:
			res.Wrong = append(res.Wrong, fmt.Sprintf("%s %s (meant to %s)", id, r.state, map[bool]string{true: "roll back", false: "succeed"}[r.fail]))
		}
		lat := r.ended.Sub(r.submitted)
		switch {
		case r.submitted.Before(warm):
		case r.submitted.Before(warm.Add(third)):
			first = append(first, lat)
		case !r.submitted.Before(loadEnd.Add(-third)):
			last = append(last, lat)
		}
	}
	slices.Sort(res.Stuck)
	slices.Sort(res.Wrong)
	var hFirst, hLast []heapSample
	for _, h := range s.heaps {
		at := s.start.Add(h.at)
		switch {
		case at.Before(warm):
		case at.Before(warm.Add(third)):
			hFirst = append(hFirst, h)
		case !at.Before(loadEnd.Add(-third)):
			hLast = append(hLast, h)
		}
	}
	res.Drift = judge(s.cfg.Limits, first, last, hFirst, hLast)
	res.Slowest = s.slowest(ctx, 5)
	for _, id := range res.Stuck {
		r, err := s.stack.Client.Get(ctx, id)
		switch {
		case errors.Is(err, api.ErrNoSaga):
			res.Lost = append(res.Lost, id)
		case err != nil:
			res.Notes = append(res.Notes, fmt.Sprintf("%s: %v", id, err))
		default:
			res.Notes = append(res.Notes, fmt.Sprintf("%s stuck in %s", id, r.Saga.State))
		}
	}
	return res
}
