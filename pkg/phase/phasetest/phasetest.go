// Package phasetest is the contract suite of phase.Executor: Run checks,
// against a real target an implementation prepares, what the phase
// framework relies on from every executor (see phase.Executor).
package phasetest

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/phase"
)

// Target is one prepared target and the executor that serves it.
type Target struct {
	Executor phase.Executor
	// Commands succeed on the target when executed in this order, each
	// once: a forward step and, if the executor has one, the step that
	// compensates it.
	Commands []events.Command
	// State describes what the commands change on the target, so that one
	// execution and two can be compared. Nil for an executor that changes
	// nothing.
	State func(t *testing.T) string
}

// Run runs the suite; newTarget prepares a fresh target for each test.
func Run(t *testing.T, newTarget func(t *testing.T) Target) {
	tests := []struct {
		name string
		fn   func(t *testing.T, tg Target)
	}{
		{"each command succeeds with a well-formed outcome", testSucceeds},
		{"a repeated command has the effect of one", testRepeated},
		{"a cancelled context is not reported as a failure", testCancelled},
		{"an unknown target fails and is not retried", testUnknownTarget},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg := newTarget(t)
			if len(tg.Commands) == 0 {
				t.Fatal("phasetest: the target has no commands")
			}
			tc.fn(t, tg)
		})
	}
}

func (tg Target) state(t *testing.T) string {
	if tg.State == nil {
		return ""
	}
	return tg.State(t)
}

// execute runs cmd on tg under ctx, and waits for it at most Patience: an
// executor that does not return is a failure of the suite, not a hang.
func execute(t *testing.T, ctx context.Context, tg Target, cmd events.Command, progress phase.Progress) (phase.Outcome, error) {
	t.Helper()
	if progress == nil {
		progress = func(string) {}
	}
	type result struct {
		out phase.Outcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := tg.Executor.Execute(ctx, cmd, progress)
		done <- result{out, err}
	}()
	select {
	case r := <-done:
		return r.out, r.err
	case <-time.After(natstest.Patience):
		t.Fatalf("%s did not return within %s", cmd.Step, natstest.Patience)
		return phase.Outcome{}, nil
	}
}

// succeed executes cmd and fails the test unless it succeeds.
func succeed(t *testing.T, tg Target, cmd events.Command, progress phase.Progress) phase.Outcome {
	t.Helper()
	out, err := execute(t, context.Background(), tg, cmd, progress)
	if err != nil {
		t.Fatalf("%s: %v", cmd.Step, err)
	}
	if out.Failed {
		t.Fatalf("%s failed: %s: %s (report %+v)", cmd.Step, out.Reason, out.Error, out.Report)
	}
	return out
}

// reasonRE is what a machine-readable reason looks like.
var reasonRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// wellFormed checks what the coordinator and the event contract expect of
// an outcome.
func wellFormed(t *testing.T, cmd events.Command, out phase.Outcome) {
	t.Helper()
	if out.Failed && (!reasonRE.MatchString(out.Reason) || out.Error == "") {
		t.Errorf("%s: a failure needs a reason like %s and an error: reason %q, error %q", cmd.Step, reasonRE, out.Reason, out.Error)
	}
	if !out.Failed && (out.Reason != "" || out.Error != "") {
		t.Errorf("%s: a success with reason %q, error %q", cmd.Step, out.Reason, out.Error)
	}
	for k := range out.Output {
		if k == "" {
			t.Errorf("%s: an output with an empty key", cmd.Step)
		}
	}
	for i, l := range out.Report {
		if l.Name == "" {
			t.Errorf("%s: report line %d has no name: %+v", cmd.Step, i, l)
		}
	}
	status := events.StatusSucceeded
	if out.Failed {
		status = events.StatusFailed
	}
	r := events.StepResult{Step: cmd.Step, Saga: cmd.Saga, Phase: cmd.Phase, Action: cmd.Action, Target: cmd.Target,
		Attempt: cmd.Attempt, Status: status, Reason: out.Reason, Error: out.Error, Output: out.Output, Report: out.Report}
	env, err := events.New(events.ResultID(cmd.Step, status, 0), events.TypeStep, "phasetest", cmd.Saga, cmd.Attempt, time.Now(), r)
	if err == nil {
		_, err = events.Encode(env)
	}
	if err != nil {
		t.Errorf("%s: the outcome cannot travel as a report: %v", cmd.Step, err)
	}
}

func testSucceeds(t *testing.T, tg Target) {
	for _, cmd := range tg.Commands {
		wellFormed(t, cmd, succeed(t, tg, cmd, nil))
	}
}

// The framework executes a command again when it crashed between executing
// and recording it, and a redelivery may find the record gone: the second
// execution must succeed and leave the target as the first did.
func testRepeated(t *testing.T, tg Target) {
	for _, cmd := range tg.Commands {
		succeed(t, tg, cmd, nil)
		once := tg.state(t)
		out := succeed(t, tg, cmd, nil)
		wellFormed(t, cmd, out)
		if twice := tg.state(t); twice != once {
			t.Fatalf("%s executed twice left\n%s\nwhere once left\n%s", cmd.Step, twice, once)
		}
	}
}

// ctx ends when the instance shuts down past its grace. What the executor
// then returns is not a verdict on the target: it must return, and not as
// a failure (which would be recorded and fail the saga) unless it reached
// one; the redelivered command then does the work.
func testCancelled(t *testing.T, tg Target) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, cmd := range tg.Commands {
		out, err := execute(t, ctx, tg, cmd, nil)
		if err == nil && out.Failed {
			t.Fatalf("%s with a cancelled context reported a failure: %s: %s", cmd.Step, out.Reason, out.Error)
		}
		succeed(t, tg, cmd, nil)
		once := tg.state(t)
		succeed(t, tg, cmd, nil)
		if again := tg.state(t); again != once {
			t.Fatalf("%s after an interrupted run: executed again left\n%s\nwhere it had left\n%s", cmd.Step, again, once)
		}
	}
}

// A target the instance does not serve will not appear on a redelivery:
// it is reported failed at once, with events.ReasonUnknown.
func testUnknownTarget(t *testing.T, tg Target) {
	before := tg.state(t)
	cmd := tg.Commands[0]
	cmd.Target = "phasetest-no-such-target"
	cmd.Step = events.StepID(cmd.Saga, cmd.Phase, cmd.Action, cmd.Target, cmd.Attempt)
	out, err := execute(t, context.Background(), tg, cmd, nil)
	if err != nil || !out.Failed || out.Reason != events.ReasonUnknown {
		t.Fatalf("outcome %+v, error %v; want a failure with reason %s", out, err, events.ReasonUnknown)
	}
	wellFormed(t, cmd, out)
	if after := tg.state(t); after != before {
		t.Fatalf("a command for another target changed this one:\n%s\nwas\n%s", after, before)
	}
}
