package phase_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/streams"
)

// record stores, in the done bucket, the result another instance recorded
// for c's step: succeeded, with output by=other.
func (r *rig) record(c events.Command) {
	r.t.Helper()
	ctx := context.Background()
	kv, err := r.js.KeyValue(ctx, streams.DoneBucket)
	if err != nil {
		r.t.Fatal(err)
	}
	now := time.Now()
	env, err := events.New(c.Step+"/other", events.TypeStep, "deploy@other", c.Saga, c.Attempt, now, events.StepResult{
		Step: c.Step, Saga: c.Saga, Phase: c.Phase, Action: c.Action, Target: c.Target, Attempt: c.Attempt,
		Status: events.StatusSucceeded, Output: map[string]string{"by": "other"}, StartedAt: now, FinishedAt: now})
	if err != nil {
		r.t.Fatal(err)
	}
	b, err := events.Encode(env)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := kv.Create(ctx, c.Step, b); err != nil {
		r.t.Fatal(err)
	}
}

// finals are the final reports published for step.
func (r *rig) finals(step string) []events.StepResult {
	var out []events.StepResult
	for _, res := range r.results() {
		if res.Step == step && res.Status.Final() {
			out = append(out, res)
		}
	}
	return out
}

// A command whose step is recorded (another instance executed it, then died
// before publishing) is answered from the record: not executed, not
// dead-lettered, and its recorded result published.
func TestARecordedCommandIsAnsweredFromItsRecord(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	r := serve(t, phase.ExecutorFunc(func(ctx context.Context, c events.Command, p phase.Progress) (phase.Outcome, error) {
		calls.Add(1)
		return phase.Success(map[string]string{"by": "us"}), nil
	}))
	c := cmd("a", events.ActionApply, 1)
	r.record(c)
	r.send(c, c.Step)
	if res := r.final(c.Step); res.Status != events.StatusSucceeded || res.Output["by"] != "other" {
		t.Fatalf("result %+v, want the recorded one", res)
	}
	next := cmd("a", events.ActionApply, 2)
	r.send(next, next.Step)
	r.final(next.Step) // in order: the first is done with
	if n := calls.Load(); n != 1 {
		t.Fatalf("executed %d times, want once (the second step only)", n)
	}
	if n := len(natstest.Read(t, r.js, events.StreamDeadLetter, "upshift.dlq.COMMANDS.>")); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}

// Two instances executed one step (a redelivery while the first still ran):
// the one that records second publishes the first's result, not its own, so
// the saga hears one answer.
func TestTheFirstRecordIsTheAnswer(t *testing.T) {
	t.Parallel()
	var rp atomic.Pointer[rig]
	r := serve(t, phase.ExecutorFunc(func(ctx context.Context, c events.Command, p phase.Progress) (phase.Outcome, error) {
		rp.Load().record(c) // the other instance finishes first
		return phase.Failure("broken", errors.New("disk full")), nil
	}))
	rp.Store(r)
	c := cmd("a", events.ActionApply, 1)
	r.send(c, c.Step)
	res := r.final(c.Step)
	if res.Status != events.StatusSucceeded || res.Output["by"] != "other" {
		t.Fatalf("result %+v, want the first recorded", res)
	}
	next := cmd("a", events.ActionApply, 2)
	r.send(next, next.Step)
	r.final(next.Step)
	if n := len(r.finals(c.Step)); n != 1 {
		t.Fatalf("%d final reports of %s, want 1", n, c.Step)
	}
}
