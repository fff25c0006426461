package saga_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
)

// watching drives a two-batch saga of a, b, c with a watch period to the
// end of its last batch's verification.
func watching(t *testing.T, watch time.Duration, opts saga.Options) *run {
	req := request(spec.KindUpgrade, 2, "a", "b", "c")
	req.Spec.Verify.Watch = spec.Duration{Duration: watch}
	r := start(t, req, opts)
	for range 5 { // precheck, backup, deploy a b, verify a b, deploy c
		r.answer(events.StatusSucceeded)
	}
	r.state(saga.StateVerifying)
	r.now = t0.Add(time.Minute)
	r.answer(events.StatusSucceeded) // verify c
	return r
}

func TestAWatchPeriodFollowsTheLastBatchOnEveryTarget(t *testing.T) {
	r := watching(t, 10*time.Minute, saga.Options{})
	r.state(saga.StateWatching)
	r.sent("verify.watch.a", "verify.watch.b", "verify.watch.c")
	end := r.now.Add(10 * time.Minute)
	for _, c := range r.last.Commands {
		if !c.NotAfter.Equal(end) || !c.Deadline.Equal(end.Add(saga.WatchGrace)) || c.Batch != 1 {
			t.Fatalf("watch command %+v: not after %v, deadline %v", c, end, end.Add(saga.WatchGrace))
		}
	}
	if !r.s.Deadline.Equal(end.Add(saga.WatchGrace)) || !r.s.WatchEnds().Equal(end) {
		t.Fatalf("deadline %v, watch ends %v; want %v", r.s.Deadline, r.s.WatchEnds(), end)
	}
	if !strings.Contains(r.s.Reason, "10m0s, until "+end.Format(time.RFC3339)) {
		t.Fatalf("reason %q", r.s.Reason)
	}
	// Nothing is due at the end of the watch itself: the grace is the
	// targets' to report in.
	r.ignored(saga.Input{Kind: saga.InputTick, At: end})
	cmds := r.last.Commands
	r.report(cmds[0], events.StatusSucceeded)
	r.report(cmds[2], events.StatusSucceeded)
	r.state(saga.StateWatching)
	r.report(cmds[1], events.StatusSucceeded)
	r.state(saga.StateSucceeded)
	if !r.s.WatchEnds().IsZero() {
		t.Fatal("a saga that is over still watches")
	}
}

func TestNoWatchPeriodSucceedsAtOnce(t *testing.T) {
	r := watching(t, 0, saga.Options{})
	r.state(saga.StateSucceeded)
	for _, c := range r.cmds {
		if c.Action == events.ActionWatch {
			t.Fatalf("watched without a watch period: %s", c.Step)
		}
	}
}

// A failure in the watch period rolls back every batch, the first
// included, and then every backup.
func TestAFailureWhileWatchingRollsBackEveryBatch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		act   func(r *run) saga.Effects
		cause saga.Cause
	}{
		{"failed", func(r *run) saga.Effects { return r.report(r.last.Commands[1], events.StatusFailed) }, saga.CauseWatchFailed},
		{"timed out", func(r *run) saga.Effects {
			return r.must(saga.Input{Kind: saga.InputTick, At: r.s.Deadline})
		}, saga.CauseWatchTimeout},
		{"cancelled", func(r *run) saga.Effects { return r.must(saga.Input{Kind: saga.InputCancel, Actor: "ops"}) }, saga.CauseCancelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := watching(t, time.Hour, saga.Options{})
			r.state(saga.StateWatching)
			eff := tc.act(r)
			r.state(saga.StateRollingBack)
			if eff.RollBack != tc.cause {
				t.Fatalf("cause %q, want %q", eff.RollBack, tc.cause)
			}
			var undone []string
			for !r.s.State.Terminal() {
				undone = append(undone, names(r.last.Commands)...)
				r.answer(events.StatusSucceeded)
			}
			r.state(saga.StateRolledBack)
			if got := strings.Join(undone, " "); got != "deploy.rollback.c deploy.rollback.b deploy.rollback.a backup.restore.c backup.restore.b backup.restore.a" {
				t.Fatalf("compensations %s", got)
			}
		})
	}
}

// The request's watch period and the environment's: the longer applies.
// Analyses: the environment's, then the request's; for one both select,
// the environment's threshold wins if it sets one.
func TestTheEnvironmentsVerifySettingsJoinTheRequests(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	env := spec.Verify{Watch: spec.Duration{Duration: time.Hour}, Analyses: []spec.AnalysisRef{
		{Name: "error-rate", Threshold: f(0.01)}, {Name: "latency"}}}
	req := request(spec.KindUpgrade, 1, "a")
	req.Spec.Verify = spec.Verify{Watch: spec.Duration{Duration: time.Minute}, Analyses: []spec.AnalysisRef{
		{Name: "error-rate", Threshold: f(0.5)}, {Name: "latency", Threshold: f(0.3)}, {Name: "saturation"}}}
	s := saga.New("s", req, saga.Options{Verify: env}, t0)
	if s.Watch() != time.Hour {
		t.Fatalf("watch %s", s.Watch())
	}
	var got []string
	for _, a := range s.Analyses() {
		th := "-"
		if a.Threshold != nil {
			th = strconv.FormatFloat(*a.Threshold, 'g', -1, 64)
		}
		got = append(got, a.Name+"="+th)
	}
	if strings.Join(got, " ") != "error-rate=0.01 latency=0.3 saturation=-" {
		t.Fatalf("analyses %v", got)
	}
	// Every verify command carries them.
	r := start(t, req, saga.Options{Verify: env})
	for range 3 {
		r.answer(events.StatusSucceeded)
	}
	r.sent("verify.probe.a")
	if a := r.last.Commands[0].Upgrade.Analyses; len(a) != 3 || *a[0].Threshold != 0.01 {
		t.Fatalf("command's analyses %+v", a)
	}
}
