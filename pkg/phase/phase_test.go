package phase_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/pkg/testlog"
)

type rig struct {
	t   *testing.T
	js  jetstream.JetStream
	svc *phase.Service
}

// serve runs a deploy service for targets a and b with exec; tune, if
// given, changes its configuration.
func serve(t *testing.T, exec phase.Executor, tune ...func(*phase.Config)) *rig {
	_, js := natstest.Start(t)
	cfg := phase.Config{
		Service: events.Deploy, Instance: "deploy@test", Targets: []string{"a", "b"},
		Actions:  []events.Action{events.ActionApply, events.ActionRollback},
		Consumer: consumer.Config{AckWait: time.Second, MaxDeliver: 3, Backoff: []time.Duration{10 * time.Millisecond}},
	}
	for _, f := range tune {
		f(&cfg)
	}
	svc := phase.New(js, cfg, exec, testlog.New(t), prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	natstest.Eventually(t, natstest.Patience, "service ready", svc.Ready)
	return &rig{t: t, js: js, svc: svc}
}

func cmd(target string, action events.Action, n int) events.Command {
	saga := fmt.Sprintf("saga%d", n)
	return events.Command{Step: events.StepID(saga, events.Deploy, action, target, 1), Saga: saga,
		Phase: events.Deploy, Action: action, Target: target, Attempt: 1,
		Deadline: time.Now().Add(time.Minute), NotAfter: time.Now().Add(time.Minute)}
}

// send publishes c; msgID lets a test bypass the stream's de-duplication.
func (r *rig) send(c events.Command, msgID string) {
	env, err := events.New(msgID, events.TypeCommand, "test", c.Saga, c.Attempt, time.Now(), c)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := bus.Publish(context.Background(), r.js, events.CommandSubject(c.Phase, c.Action, c.Target), env); err != nil {
		r.t.Fatal(err)
	}
}

// results returns the reports published on EVENTS, decoded.
func (r *rig) results() []events.StepResult {
	return natstest.ReadEvents[events.StepResult](r.t, r.js, events.StreamEvents, "upshift.evt.>", events.TypeStep)
}

func (r *rig) final(step string) events.StepResult {
	var got events.StepResult
	natstest.Eventually(r.t, natstest.Patience, "final report of "+step, func() bool {
		for _, res := range r.results() {
			if res.Step == step && res.Status.Final() {
				got = res
				return true
			}
		}
		return false
	})
	return got
}

func TestExecutesAndReportsStartedThenResult(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	r := serve(t, phase.ExecutorFunc(func(ctx context.Context, c events.Command, p phase.Progress) (phase.Outcome, error) {
		calls.Add(1)
		p("halfway")
		return phase.Success(map[string]string{"previous": "1.0"}), nil
	}))
	c := cmd("a", events.ActionApply, 1)
	r.send(c, c.Step)
	res := r.final(c.Step)
	if res.Status != events.StatusSucceeded || res.Output["previous"] != "1.0" || res.StartedAt.IsZero() || res.FinishedAt.IsZero() {
		t.Fatalf("result %+v", res)
	}
	var statuses []string
	for _, x := range r.results() {
		statuses = append(statuses, string(x.Status)+":"+x.Message)
	}
	if strings.Join(statuses, " ") != "started: progress:halfway succeeded:" {
		t.Fatalf("reports %v", statuses)
	}
	if calls.Load() != 1 {
		t.Fatalf("executed %d times", calls.Load())
	}
}

// A step done before StartedAfter is reported once, by its result, which
// carries its start and run; one that runs longer is reported started
// first, with the same start; one whose run ends in error quickly is
// reported started, then its last word. (StartedAfter is a second here,
// not the default 200 ms: an instant step paused that long by a loaded
// machine would be reported started, rightly.)
func TestStartedReportedOnlyOnceAStepRunsAWhile(t *testing.T) {
	t.Parallel()
	const after = time.Second
	r := serve(t, phase.ExecutorFunc(func(ctx context.Context, c events.Command, p phase.Progress) (phase.Outcome, error) {
		switch {
		case c.Target == "b":
			time.Sleep(after + after/4)
		case c.Action == events.ActionRollback:
			return phase.Outcome{}, errors.New("disk busy")
		}
		return phase.Success(nil), nil
	}), func(c *phase.Config) { c.StartedAfter = after })
	quick, slow := cmd("a", events.ActionApply, 1), cmd("b", events.ActionApply, 2)
	erring := cmd("a", events.ActionRollback, 3)
	for _, c := range []events.Command{quick, slow, erring} {
		r.send(c, c.Step)
	}
	got := map[string][]events.StepResult{}
	for _, c := range []events.Command{quick, slow} {
		r.final(c.Step)
	}
	natstest.Eventually(t, natstest.Patience, "the erring step's last word", func() bool {
		for _, res := range r.results() {
			if res.Step == erring.Step && res.Status == events.StatusProgress {
				return true
			}
		}
		return false
	})
	for _, res := range r.results() {
		got[res.Step] = append(got[res.Step], res)
	}
	statuses := func(step string) string {
		var out []string
		for _, res := range got[step] {
			out = append(out, string(res.Status))
		}
		return strings.Join(out, " ")
	}
	if s := statuses(quick.Step); s != "succeeded" {
		t.Errorf("quick step reported %q, want its result alone", s)
	} else if res := got[quick.Step][0]; res.StartedAt.IsZero() || res.Run != 1 {
		t.Errorf("quick step's result has start %v, run %d", res.StartedAt, res.Run)
	}
	if s := statuses(slow.Step); s != "started succeeded" {
		t.Errorf("slow step reported %q, want started, then its result", s)
	} else if a, b := got[slow.Step][0].StartedAt, got[slow.Step][1].StartedAt; !a.Equal(b) {
		t.Errorf("slow step started at %v, its result says %v", a, b)
	}
	if s := statuses(erring.Step); !strings.HasPrefix(s, "started progress") {
		t.Errorf("erring step reported %q, want started, then its last word", s)
	}
}

func TestRedeliveredCommandExecutesOnce(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	r := serve(t, phase.ExecutorFunc(func(ctx context.Context, c events.Command, p phase.Progress) (phase.Outcome, error) {
		calls.Add(1)
		return phase.Success(nil), nil
	}))
	c := cmd("a", events.ActionApply, 1)
	r.send(c, c.Step)
	r.final(c.Step)
	// The same command again, under other message ids so the stream keeps
	// them: as after a re-publish outside the duplicate window.
	r.send(c, c.Step+"/again")
	r.send(c, c.Step+"/and-again")
	next := cmd("a", events.ActionApply, 2)
	r.send(next, next.Step)
	r.final(next.Step) // processed in order, so the duplicates are done too
	if calls.Load() != 2 {
		t.Fatalf("executed %d times, want 2 (one per step)", calls.Load())
	}
}

func TestExpiredAndUnsupportedAreReportedNotExecuted(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	r := serve(t, phase.ExecutorFunc(func(ctx context.Context, c events.Command, p phase.Progress) (phase.Outcome, error) {
		calls.Add(1)
		return phase.Success(nil), nil
	}))
	late := cmd("a", events.ActionApply, 1)
	late.NotAfter = time.Now().Add(-time.Second)
	r.send(late, late.Step)
	odd := cmd("b", events.ActionMaintain, 2)
	r.send(odd, odd.Step)
	if res := r.final(late.Step); res.Reason != events.ReasonExpired || !strings.Contains(res.Error, "not executed") {
		t.Fatalf("late: %+v", res)
	}
	if res := r.final(odd.Step); res.Reason != events.ReasonUnsupported {
		t.Fatalf("odd: %+v", res)
	}
	// A compensation has no NotAfter: done however late.
	rb := cmd("a", events.ActionRollback, 3)
	rb.NotAfter, rb.Deadline = time.Time{}, time.Now().Add(-time.Hour)
	r.send(rb, rb.Step)
	if res := r.final(rb.Step); res.Status != events.StatusSucceeded {
		t.Fatalf("late compensation: %+v", res)
	}
	if calls.Load() != 1 {
		t.Fatalf("executed %d times, want only the compensation", calls.Load())
	}
}

func TestFailureOutcomeAndGivingUp(t *testing.T) {
	t.Parallel()
	r := serve(t, phase.ExecutorFunc(func(ctx context.Context, c events.Command, p phase.Progress) (phase.Outcome, error) {
		if c.Target == "a" {
			return phase.Failure("start_failed", errors.New("start hook exited 3"),
				events.ReportLine{Name: "start", OK: false, Detail: "exit 3"}), nil
		}
		return phase.Outcome{}, errors.New("cannot reach the artifact store")
	}))
	a, b := cmd("a", events.ActionApply, 1), cmd("b", events.ActionApply, 2)
	r.send(a, a.Step)
	r.send(b, b.Step)
	if res := r.final(a.Step); res.Status != events.StatusFailed || res.Reason != "start_failed" || len(res.Report) != 1 {
		t.Fatalf("a: %+v", res)
	}
	res := r.final(b.Step)
	if res.Reason != events.ReasonGaveUp || !strings.Contains(res.Error, "gave up after 3 deliveries: cannot reach") {
		t.Fatalf("b: %+v", res)
	}
	// The failure is reported before the command is dead-lettered.
	var dl [][]byte
	natstest.Eventually(t, natstest.Patience, "the given-up command dead-lettered", func() bool {
		dl = natstest.Read(t, r.js, events.StreamDeadLetter, events.DeadLetterSubject(events.StreamCommands, r.svc.ConsumerName()))
		return len(dl) >= 1
	})
	if len(dl) != 1 {
		t.Fatalf("%d dead letters for the given-up command", len(dl))
	}
}

func TestMalformedCommandIsDeadLetteredAndTheTargetGoesOn(t *testing.T) {
	t.Parallel()
	r := serve(t, phase.ExecutorFunc(func(ctx context.Context, c events.Command, p phase.Progress) (phase.Outcome, error) {
		return phase.Success(nil), nil
	}))
	if _, err := r.js.Publish(context.Background(), "upshift.cmd.deploy.apply.a", []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	bad := cmd("a", events.ActionApply, 1)
	bad.Target = ""
	env, _ := events.New("no-target", events.TypeCommand, "test", bad.Saga, 1, time.Now(), bad)
	if err := bus.Publish(context.Background(), r.js, "upshift.cmd.deploy.apply.a", env); err != nil {
		t.Fatal(err)
	}
	c := cmd("a", events.ActionApply, 2)
	r.send(c, c.Step)
	r.final(c.Step)
	if n := len(natstest.Read(t, r.js, events.StreamDeadLetter, events.DeadLetterSubject(events.StreamCommands, r.svc.ConsumerName()))); n != 2 {
		t.Fatalf("%d dead letters, want 2", n)
	}
}

func TestOneCommandAtATimePerTargetInOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	running := map[string]int{}
	var order []string
	r := serve(t, phase.ExecutorFunc(func(ctx context.Context, c events.Command, p phase.Progress) (phase.Outcome, error) {
		mu.Lock()
		running[c.Target]++
		if running[c.Target] > 1 {
			t.Errorf("two commands at once on %s", c.Target)
		}
		order = append(order, c.Target+":"+c.Saga)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		running[c.Target]--
		mu.Unlock()
		return phase.Success(nil), nil
	}))
	var last events.Command
	for i := range 6 {
		last = cmd([]string{"a", "b"}[i%2], events.ActionApply, i)
		r.send(last, last.Step)
	}
	r.final(last.Step)
	r.final(cmd("a", events.ActionApply, 4).Step)
	mu.Lock()
	defer mu.Unlock()
	var onA []string
	for _, o := range order {
		if strings.HasPrefix(o, "a:") {
			onA = append(onA, o)
		}
	}
	if strings.Join(onA, " ") != "a:saga0 a:saga2 a:saga4" {
		t.Fatalf("order on a: %v", onA)
	}
}

// The service is ready only while every target's consumer is consumed: not
// while the COMMANDS stream is gone, and again once it is back.
func TestReadyFollowsTheConsumers(t *testing.T) {
	r := serve(t, phase.ExecutorFunc(func(ctx context.Context, c events.Command, p phase.Progress) (phase.Outcome, error) {
		return phase.Success(nil), nil
	}))
	ctx := context.Background()
	if err := r.js.DeleteStream(ctx, events.StreamCommands); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, natstest.Patience, "not ready without COMMANDS", func() bool { return !r.svc.Ready() })
	if err := streams.Ensure(ctx, r.js, streams.Config{}, events.StreamCommands); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, natstest.Patience, "ready again", r.svc.Ready)
	c := cmd("b", events.ActionApply, 1)
	r.send(c, c.Step)
	if res := r.final(c.Step); res.Status != events.StatusSucceeded {
		t.Fatalf("result %+v", res)
	}
}
