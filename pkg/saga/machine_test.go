package saga_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
)

func TestStartDispatchesPrechecksWithADeadline(t *testing.T) {
	r := start(t, request(spec.KindUpgrade, 1, "a", "b"), saga.Options{})
	r.state(saga.StatePrechecking)
	r.sent("precheck.check.a", "precheck.check.b")
	if got := kinds(r.last.Events); got != "requested prechecking" {
		t.Fatalf("events %q", got)
	}
	due := t0.Add(spec.DefaultTimeouts.Precheck.Duration)
	if len(r.last.Wake) != 1 || !r.last.Wake[0].Equal(due) || !r.s.Deadline.Equal(due) {
		t.Fatalf("wake %v deadline %v, want %v", r.last.Wake, r.s.Deadline, due)
	}
	c := r.last.Commands[0]
	if c.Step != "s1.precheck.check.a.1" || !c.NotAfter.Equal(due) || c.Upgrade.To != "1.1" {
		t.Fatalf("command %+v", c)
	}
	if e := r.last.Events[1]; e.Saga != "s1" || e.Seq != 1 || e.Previous != "requested" || e.Team != "platform" {
		t.Fatalf("event %+v", e)
	}
	r.ignored(saga.Input{Kind: saga.InputStart})
}

func TestHappyPathRunsBatchesInOrder(t *testing.T) {
	r := start(t, request(spec.KindUpgrade, 2, "a", "b", "c"), saga.Options{})
	r.answer(events.StatusSucceeded)
	r.state(saga.StateBackingUp)
	r.sent("backup.archive.a", "backup.archive.b", "backup.archive.c")
	r.answer(events.StatusSucceeded)
	r.state(saga.StateDeploying)
	r.sent("deploy.apply.a", "deploy.apply.b")
	r.answer(events.StatusSucceeded)
	r.state(saga.StateVerifying)
	r.sent("verify.probe.a", "verify.probe.b")
	r.answer(events.StatusSucceeded)
	r.state(saga.StateDeploying)
	if r.s.Batch != 1 {
		t.Fatalf("batch %d", r.s.Batch)
	}
	r.sent("deploy.apply.c")
	r.answer(events.StatusSucceeded)
	r.sent("verify.probe.c")
	r.answer(events.StatusSucceeded)
	r.state(saga.StateSucceeded)
	if !r.s.Deadline.IsZero() {
		t.Fatalf("terminal saga keeps deadline %v", r.s.Deadline)
	}
	r.ignored(saga.Input{Kind: saga.InputTick, At: t0.Add(48 * time.Hour)})
}

func TestStartedAndProgressMarkTheStepRunning(t *testing.T) {
	r := start(t, request(spec.KindUpgrade, 1, "a"), saga.Options{})
	c := r.last.Commands[0]
	r.now = t0.Add(time.Second)
	r.must(saga.Input{Kind: saga.InputReport, Result: result(c, events.StatusStarted)})
	st, _ := r.s.Step(c.Step)
	if st.Status != saga.StepRunning || !st.StartedAt.Equal(r.now) {
		t.Fatalf("step %+v", st)
	}
	r.ignored(saga.Input{Kind: saga.InputReport, Result: result(c, events.StatusStarted)})
	r.now = t0.Add(2 * time.Second)
	p := result(c, events.StatusProgress)
	p.Message = "hashing 40%"
	r.must(saga.Input{Kind: saga.InputReport, Result: p})
	st, _ = r.s.Step(c.Step)
	if !st.HeartbeatAt.Equal(r.now) || st.Progress != "hashing 40%" {
		t.Fatalf("step %+v", st)
	}
}

func TestAStepThatRanAgainShowsEachRun(t *testing.T) {
	r := start(t, request(spec.KindUpgrade, 1, "a"), saga.Options{})
	c := r.last.Commands[0]
	report := func(status events.Status, run int, msg string) saga.Input {
		p := result(c, status)
		p.Run, p.Message = run, msg
		return saga.Input{Kind: saga.InputReport, Result: p}
	}
	r.now = t0.Add(time.Second)
	r.must(report(events.StatusStarted, 1, ""))
	r.now = t0.Add(2 * time.Second)
	r.must(report(events.StatusProgress, 1, "run 1 ended in error, to be tried again: disk busy"))
	if st, _ := r.s.Step(c.Step); st.Executions() != 1 || len(st.Runs) != 0 {
		t.Fatalf("one run: executions %d, runs %+v", st.Executions(), st.Runs)
	}
	r.now = t0.Add(3 * time.Second)
	r.must(report(events.StatusStarted, 2, ""))
	r.ignored(report(events.StatusStarted, 2, ""))
	r.ignored(report(events.StatusStarted, 1, ""))
	r.now = t0.Add(4 * time.Second)
	r.must(report(events.StatusProgress, 2, "hashing 50%"))
	st, _ := r.s.Step(c.Step)
	want := []saga.Run{
		{N: 1, StartedAt: t0.Add(time.Second), Progress: "run 1 ended in error, to be tried again: disk busy"},
		{N: 2, StartedAt: t0.Add(3 * time.Second), Progress: "hashing 50%"},
	}
	if st.Executions() != 2 || !reflect.DeepEqual(st.Runs, want) || st.Run != 2 {
		t.Fatalf("executions %d, run %d, runs %+v; want %+v", st.Executions(), st.Run, st.Runs, want)
	}
	r.must(report(events.StatusSucceeded, 2, ""))
	if st, _ := r.s.Step(c.Step); st.Status != saga.StepSucceeded || st.Executions() != 2 {
		t.Fatalf("after success: %+v", st)
	}
}

// Reports of two runs handled out of order (the coordinator handles a
// saga's events concurrently) still show each run with its own words.
func TestRunsReportedOutOfOrderKeepTheirOwnWords(t *testing.T) {
	r := start(t, request(spec.KindUpgrade, 1, "a"), saga.Options{})
	c := r.last.Commands[0]
	report := func(status events.Status, run int, msg string, sent time.Time) saga.Input {
		p := result(c, status)
		p.Run, p.Message, p.StartedAt = run, msg, sent
		return saga.Input{Kind: saga.InputReport, Result: p, Sent: sent}
	}
	r.now = t0.Add(5 * time.Second)
	r.must(report(events.StatusStarted, 2, "", t0.Add(3*time.Second)))
	r.must(report(events.StatusStarted, 1, "", t0.Add(time.Second)))
	r.must(report(events.StatusProgress, 2, "hashing", t0.Add(4*time.Second)))
	r.must(report(events.StatusProgress, 1, "run 1 ended in error", t0.Add(2*time.Second)))
	st, _ := r.s.Step(c.Step)
	want := []saga.Run{
		{N: 1, StartedAt: t0.Add(time.Second), Progress: "run 1 ended in error"},
		{N: 2, StartedAt: t0.Add(3 * time.Second), Progress: "hashing"},
	}
	if !reflect.DeepEqual(st.Runs, want) || st.Progress != "hashing" || st.Run != 2 {
		t.Fatalf("run %d, progress %q, runs %+v; want %+v", st.Run, st.Progress, st.Runs, want)
	}

	// The second run's result before its start, the first run's last word
	// after the step ended.
	r = start(t, request(spec.KindUpgrade, 1, "a"), saga.Options{})
	c = r.last.Commands[0]
	r.must(report(events.StatusStarted, 1, "", t0.Add(time.Second)))
	r.must(report(events.StatusSucceeded, 2, "", t0.Add(3*time.Second)))
	r.must(report(events.StatusProgress, 1, "run 1 ended in error", t0.Add(2*time.Second)))
	r.ignored(report(events.StatusStarted, 2, "", t0.Add(3*time.Second)))
	st, _ = r.s.Step(c.Step)
	want[1].Progress = ""
	if !reflect.DeepEqual(st.Runs, want) || st.Run != 2 || st.Status != saga.StepSucceeded {
		t.Fatalf("status %s, run %d, runs %+v; want %+v", st.Status, st.Run, st.Runs, want)
	}

	// The first run's last word before its start; the second's start.
	r = start(t, request(spec.KindUpgrade, 1, "a"), saga.Options{})
	c = r.last.Commands[0]
	r.must(report(events.StatusProgress, 1, "run 1 ended in error", t0.Add(2*time.Second)))
	r.ignored(report(events.StatusStarted, 1, "", t0.Add(time.Second)))
	r.must(report(events.StatusStarted, 2, "", t0.Add(3*time.Second)))
	r.must(report(events.StatusSucceeded, 2, "", t0.Add(4*time.Second)))
	st, _ = r.s.Step(c.Step)
	if len(st.Runs) != 2 || st.Runs[0].Progress != "run 1 ended in error" || st.Executions() != 2 {
		t.Fatalf("runs %+v", st.Runs)
	}

	// The second run's result first, then the first run's last word.
	r = start(t, request(spec.KindUpgrade, 1, "a"), saga.Options{})
	c = r.last.Commands[0]
	r.must(report(events.StatusSucceeded, 2, "", t0.Add(4*time.Second)))
	r.must(report(events.StatusProgress, 1, "run 1 ended in error", t0.Add(2*time.Second)))
	r.ignored(report(events.StatusStarted, 1, "", t0.Add(time.Second)))
	st, _ = r.s.Step(c.Step)
	if len(st.Runs) != 2 || st.Runs[0].N != 1 || st.Runs[0].Progress != "run 1 ended in error" || st.Run != 2 {
		t.Fatalf("run %d, runs %+v", st.Run, st.Runs)
	}
}

func TestAnOlderProgressReportDoesNotOverwriteANewerOne(t *testing.T) {
	r := start(t, request(spec.KindUpgrade, 1, "a"), saga.Options{})
	c := r.last.Commands[0]
	progress := func(msg string, sent time.Time) saga.Input {
		p := result(c, events.StatusProgress)
		p.Message = msg
		return saga.Input{Kind: saga.InputReport, Result: p, Sent: sent}
	}
	// Handled in the opposite order to the one they were sent in.
	r.now = t0.Add(time.Minute)
	r.must(progress("hashing 60%", t0.Add(20*time.Second)))
	r.now = t0.Add(2 * time.Minute)
	r.ignored(progress("hashing 30%", t0.Add(10*time.Second)))
	st, _ := r.s.Step(c.Step)
	if st.Progress != "hashing 60%" || !st.HeartbeatAt.Equal(t0.Add(20*time.Second)) {
		t.Fatalf("step keeps %q from %v, want the newer report's", st.Progress, st.HeartbeatAt)
	}
	// One sent at the same time, or later, is applied.
	r.must(progress("hashing 61%", t0.Add(20*time.Second)))
	r.must(progress("hashing 90%", t0.Add(30*time.Second)))
	st, _ = r.s.Step(c.Step)
	if st.Progress != "hashing 90%" || !st.HeartbeatAt.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("step %q from %v, want the newest report's", st.Progress, st.HeartbeatAt)
	}
}

func TestPrecheckFailureOrTimeoutFailsWithNothingToUndo(t *testing.T) {
	for _, tc := range []struct {
		name string
		act  func(r *run)
		want string
	}{
		{"failure", func(r *run) { r.report(r.last.Commands[1], events.StatusFailed) }, "precheck check on b failed: boom"},
		{"timeout", func(r *run) {
			r.report(r.last.Commands[0], events.StatusSucceeded)
			r.ignored(saga.Input{Kind: saga.InputTick, At: r.s.Deadline.Add(-time.Second)})
			r.must(saga.Input{Kind: saga.InputTick, At: r.s.Deadline})
		}, "precheck check on b timed out: no result within 5m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, request(spec.KindUpgrade, 1, "a", "b"), saga.Options{})
			tc.act(r)
			r.state(saga.StateFailed)
			if !strings.HasPrefix(r.s.Reason, tc.want) {
				t.Fatalf("reason %q, want %q", r.s.Reason, tc.want)
			}
			if len(r.last.Commands) != 0 {
				t.Fatalf("sent %v", names(r.last.Commands))
			}
			if !strings.Contains(kinds(r.last.Events), "step_failed failed") {
				t.Fatalf("events %q", kinds(r.last.Events))
			}
		})
	}
}

func TestBackupFailureFailsWithoutDeploying(t *testing.T) {
	r := start(t, request(spec.KindUpgrade, 1, "a", "b"), saga.Options{})
	r.answer(events.StatusSucceeded)
	r.report(r.last.Commands[0], events.StatusFailed)
	r.state(saga.StateFailed)
	if !strings.Contains(r.s.Reason, "partial backups are discarded") {
		t.Fatalf("reason %q", r.s.Reason)
	}
	for _, c := range r.cmds {
		if c.Phase == events.Deploy {
			t.Fatalf("deployed after a failed backup: %v", names(r.cmds))
		}
	}
}

func TestSkippedBackupGoesStraightToDeploy(t *testing.T) {
	req := request(spec.KindUpgrade, 1, "a")
	req.Spec.Backup.Skip = true
	r := start(t, req, saga.Options{})
	r.answer(events.StatusSucceeded)
	r.state(saga.StateDeploying)
	r.sent("deploy.apply.a")
}

func TestAnInstallHasNoBackupAndItsRollBackUndoesTheDeploy(t *testing.T) {
	r := start(t, request(spec.KindInstall, 1, "a"), saga.Options{})
	r.answer(events.StatusSucceeded)
	r.state(saga.StateDeploying)
	r.sent("deploy.apply.a")
	if u := r.last.Commands[0].Upgrade; u.Kind != string(spec.KindInstall) || u.From != "" || u.To != "1.1" {
		t.Fatalf("upgrade %+v", u)
	}
	r.answer(events.StatusSucceeded)
	r.state(saga.StateVerifying)
	r.answer(events.StatusFailed)
	r.state(saga.StateRollingBack)
	r.sent("deploy.rollback.a")
	r.answer(events.StatusSucceeded)
	r.state(saga.StateRolledBack)
}

func TestADryRunEndsCheckedAfterItsPrecheckWithoutApprovalOrWindow(t *testing.T) {
	req := request(spec.KindUpgrade, 1, "a", "b")
	req.Spec.DryRun = true
	req.Spec.Windows = []spec.Window{{Start: "02:00", End: "03:00"}}
	r := start(t, req, saga.Options{RequireApproval: true})
	if e := r.last.Events[0]; !e.DryRun || !strings.HasPrefix(e.Reason, "dry run of the upgrade") {
		t.Fatalf("requested event %+v", e)
	}
	r.answer(events.StatusSucceeded)
	r.state(saga.StateChecked)
	if r.s.Reason != "every check passed; nothing was changed" || len(r.last.Commands) != 0 || !r.s.State.Terminal() {
		t.Fatalf("saga %s (%s), commands %v", r.s.State, r.s.Reason, r.last.Commands)
	}
	for _, c := range r.cmds {
		if c.Phase != events.Precheck {
			t.Fatalf("a dry run sent %s", c.Step)
		}
	}

	failing := start(t, req, saga.Options{})
	failing.report(failing.last.Commands[1], events.StatusFailed)
	failing.state(saga.StateFailed)
}

// upTo drives a two-batch saga of a, b, c (batch size 2) to the verify of
// batch 2, every step succeeding.
func upTo(t *testing.T) *run {
	r := start(t, request(spec.KindUpgrade, 2, "a", "b", "c"), saga.Options{})
	r.answer(events.StatusSucceeded) // precheck
	r.answer(events.StatusSucceeded) // backup
	d := r.last.Commands
	r.report(d[1], events.StatusSucceeded) // b finishes before a
	r.report(d[0], events.StatusSucceeded)
	r.answer(events.StatusSucceeded) // verify batch 1
	r.answer(events.StatusSucceeded) // deploy c
	r.state(saga.StateVerifying)
	return r
}

func TestVerifyFailureRollsBackEveryBatchNewestFirstThenRestores(t *testing.T) {
	r := upTo(t)
	r.report(r.last.Commands[0], events.StatusFailed)
	r.state(saga.StateRollingBack)
	if !strings.HasPrefix(r.s.Reason, "verify probe on c failed") {
		t.Fatalf("reason %q", r.s.Reason)
	}
	// One compensation at a time, newest first: c, then a (finished after b),
	// then b; then the backups, newest first.
	want := []string{"deploy.rollback.c", "deploy.rollback.a", "deploy.rollback.b",
		"backup.restore.c", "backup.restore.b", "backup.restore.a"}
	for i, w := range want {
		r.sent(w)
		if r.last.Commands[0].NotAfter != (time.Time{}) || r.last.Commands[0].Compensates == "" {
			t.Fatalf("compensation %+v", r.last.Commands[0])
		}
		r.answer(events.StatusSucceeded)
		if i < len(want)-1 {
			r.state(saga.StateRollingBack)
		}
	}
	r.state(saga.StateRolledBack)
	if !strings.HasPrefix(r.s.Reason, "verify probe on c failed") {
		t.Fatalf("reason %q", r.s.Reason)
	}
}

func TestRestoresOnlyTargetsADeployTouched(t *testing.T) {
	r := start(t, request(spec.KindUpgrade, 1, "a", "b"), saga.Options{})
	r.answer(events.StatusSucceeded)
	r.answer(events.StatusSucceeded)
	r.report(r.last.Commands[0], events.StatusFailed) // deploy a fails; b never deployed
	r.sent("deploy.rollback.a")
	r.answer(events.StatusSucceeded)
	r.sent("backup.restore.a")
	r.answer(events.StatusSucceeded)
	r.state(saga.StateRolledBack)
}

func TestDeployStillRunningIsCompensatedFirst(t *testing.T) {
	r := start(t, request(spec.KindUpgrade, 3, "a", "b", "c"), saga.Options{})
	r.answer(events.StatusSucceeded)
	r.answer(events.StatusSucceeded)
	d := r.last.Commands
	r.report(d[0], events.StatusSucceeded)
	r.report(d[1], events.StatusFailed) // c is still deploying
	r.sent("deploy.rollback.c")
	r.report(d[2], events.StatusSucceeded) // c's apply finishes behind us: recorded only
	r.state(saga.StateRollingBack)
	r.sent("deploy.rollback.c")
	r.answer(events.StatusSucceeded)
	r.sent("deploy.rollback.b")
	r.answer(events.StatusSucceeded)
	r.sent("deploy.rollback.a")
}

func TestFailedCompensationContinuesAndEndsRollbackFailed(t *testing.T) {
	r := upTo(t)
	r.report(r.last.Commands[0], events.StatusFailed)
	r.answer(events.StatusFailed) // rollback c fails
	r.state(saga.StateRollingBack)
	r.sent("deploy.rollback.a")
	for r.s.State == saga.StateRollingBack {
		r.answer(events.StatusSucceeded)
	}
	r.state(saga.StateRollbackFailed)
	// The compensation's error, which says what to do, is in the reason.
	if !strings.Contains(r.s.Reason, "a human is needed: deploy rollback on c failed (boom)") {
		t.Fatalf("reason %q", r.s.Reason)
	}
}

func TestCompensationTimeoutMovesOnAndRecordsTheLateResult(t *testing.T) {
	r := upTo(t)
	r.report(r.last.Commands[0], events.StatusFailed)
	slow := r.last.Commands[0]
	r.must(saga.Input{Kind: saga.InputTick, At: r.s.Deadline})
	r.sent("deploy.rollback.a")
	st, _ := r.s.Step(slow.Step)
	if st.Status != saga.StepTimedOut {
		t.Fatalf("status %s", st.Status)
	}
	eff := r.report(slow, events.StatusSucceeded)
	if eff.Ignored != "" || len(eff.Commands) != 0 || kinds(eff.Events) != events.KindIgnored {
		t.Fatalf("late result: %+v", eff)
	}
	st, _ = r.s.Step(slow.Step)
	if st.Late != events.StatusSucceeded || st.Status != saga.StepTimedOut {
		t.Fatalf("step %+v", st)
	}
	r.ignored(saga.Input{Kind: saga.InputReport, Result: result(slow, events.StatusSucceeded)})
}

func TestDuplicateAndUnknownReportsAreIgnored(t *testing.T) {
	r := start(t, request(spec.KindUpgrade, 1, "a", "b"), saga.Options{})
	c := r.last.Commands[0]
	r.report(c, events.StatusSucceeded)
	r.ignored(saga.Input{Kind: saga.InputReport, Result: result(c, events.StatusSucceeded)})
	r.ignored(saga.Input{Kind: saga.InputReport, Result: result(c, events.StatusFailed)})
	bogus := result(c, events.StatusSucceeded)
	bogus.Step = "s1.deploy.apply.a.1"
	r.ignored(saga.Input{Kind: saga.InputReport, Result: bogus})
	other := result(c, events.StatusSucceeded)
	other.Saga = "s2"
	r.ignored(saga.Input{Kind: saga.InputReport, Result: other})
	r.ignored(saga.Input{Kind: saga.InputReport})
}

func TestCancel(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps int // phases answered before the cancel
		want  saga.State
	}{
		{"while prechecking", 0, saga.StateCancelled},
		{"while backing up", 1, saga.StateCancelled},
		{"while deploying", 2, saga.StateRollingBack},
		{"while verifying", 3, saga.StateRollingBack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, request(spec.KindUpgrade, 1, "a"), saga.Options{})
			for range tc.steps {
				r.answer(events.StatusSucceeded)
			}
			r.must(saga.Input{Kind: saga.InputCancel, Actor: "alice", Comment: "wrong day"})
			r.state(tc.want)
			if !strings.HasPrefix(r.s.Reason, "cancelled by alice: wrong day") || r.s.Cancel.Actor != "alice" {
				t.Fatalf("reason %q", r.s.Reason)
			}
			if tc.want == saga.StateRollingBack {
				r.sent("deploy.rollback.a")
				r.ignored(saga.Input{Kind: saga.InputCancel, Actor: "bob"})
				r.answer(events.StatusSucceeded)
				r.answer(events.StatusSucceeded)
				r.state(saga.StateRolledBack)
			}
			r.ignored(saga.Input{Kind: saga.InputCancel, Actor: "bob"})
		})
	}
}

func TestApprovalGate(t *testing.T) {
	opts := saga.Options{RequireApproval: true, ApprovalTimeout: time.Hour}
	t.Run("approve", func(t *testing.T) {
		r := start(t, request(spec.KindUpgrade, 1, "a"), opts)
		r.answer(events.StatusSucceeded)
		r.state(saga.StateAwaitingApproval)
		if !r.s.Deadline.Equal(t0.Add(time.Hour)) || len(r.last.Wake) != 1 {
			t.Fatalf("deadline %v wake %v", r.s.Deadline, r.last.Wake)
		}
		r.must(saga.Input{Kind: saga.InputApprove, Actor: "carol", Comment: "go"})
		r.state(saga.StateBackingUp)
		if kinds(r.last.Events) != "approved backing_up" || r.last.Events[0].Actor != "carol" {
			t.Fatalf("events %q", kinds(r.last.Events))
		}
		r.ignored(saga.Input{Kind: saga.InputApprove, Actor: "dave"})
		r.ignored(saga.Input{Kind: saga.InputReject, Actor: "dave"})
	})
	t.Run("approved early", func(t *testing.T) {
		r := start(t, request(spec.KindUpgrade, 1, "a"), opts)
		r.must(saga.Input{Kind: saga.InputApprove, Actor: "carol"})
		r.state(saga.StatePrechecking)
		// Approved is approved: a reject now is too late, even in a state
		// a reject could otherwise end; cancel is the way back.
		r.ignored(saga.Input{Kind: saga.InputReject, Actor: "dave"})
		r.state(saga.StatePrechecking)
		r.answer(events.StatusSucceeded)
		r.state(saga.StateBackingUp)
	})
	t.Run("rejected while prechecking", func(t *testing.T) {
		r := start(t, request(spec.KindUpgrade, 1, "a"), opts)
		r.must(saga.Input{Kind: saga.InputReject, Actor: "erin"})
		r.state(saga.StateRejected)
	})
	t.Run("reject", func(t *testing.T) {
		r := start(t, request(spec.KindUpgrade, 1, "a"), opts)
		r.answer(events.StatusSucceeded)
		r.must(saga.Input{Kind: saga.InputReject, Actor: "erin", Comment: "freeze"})
		r.state(saga.StateRejected)
		if r.s.Reason != "rejected by erin: freeze" {
			t.Fatalf("reason %q", r.s.Reason)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		r := start(t, request(spec.KindUpgrade, 1, "a"), opts)
		r.answer(events.StatusSucceeded)
		r.must(saga.Input{Kind: saga.InputTick, At: t0.Add(time.Hour)})
		r.state(saga.StateFailed)
		if r.s.Reason != "no approval within 1h0m0s" {
			t.Fatalf("reason %q", r.s.Reason)
		}
	})
	t.Run("not required", func(t *testing.T) {
		r := start(t, request(spec.KindUpgrade, 1, "a"), saga.Options{})
		r.ignored(saga.Input{Kind: saga.InputApprove, Actor: "carol"})
		r.ignored(saga.Input{Kind: saga.InputReject, Actor: "carol"})
		r.answer(events.StatusSucceeded)
		r.state(saga.StateBackingUp)
	})
}

func TestMaintenanceIsBackedUpOnlyWhenAnActionChangesData(t *testing.T) {
	for _, tc := range []struct {
		actions []string
		backup  bool
	}{
		{[]string{"reindex"}, false},
		{[]string{"analyze", "vacuum", "config-drift", "config-baseline"}, false},
		{[]string{"reindex", "purge"}, true},
		{[]string{"archive-logs"}, true},
	} {
		t.Run(strings.Join(tc.actions, "+"), func(t *testing.T) {
			req := request(spec.KindMaintenance, 1, "a")
			req.Spec.Maintenance = &spec.Maintenance{Actions: tc.actions}
			if slices.Contains(tc.actions, "purge") {
				req.Spec.Maintenance.Purge = []string{"old-sessions"}
			}
			r := start(t, req, saga.Options{})
			r.answer(events.StatusSucceeded)
			if tc.backup {
				r.sent("backup.archive.a")
				r.answer(events.StatusSucceeded)
			}
			r.sent("deploy.maintain.a")
			u := r.last.Commands[0].Upgrade
			if !slices.Equal(u.Actions, tc.actions) || !slices.Equal(u.Purge, req.Spec.Maintenance.Purge) {
				t.Fatalf("actions %v purge %v", u.Actions, u.Purge)
			}
			// A failed run is compensated by the restore of its backup, if
			// it has one; a run that changes no data has nothing to undo.
			r.answer(events.StatusFailed)
			if tc.backup {
				r.state(saga.StateRollingBack)
				r.sent("backup.restore.a")
				r.answer(events.StatusSucceeded)
			}
			r.state(saga.StateRolledBack)
		})
	}
}

func TestIgnoredInputsLeaveTheSagaAlone(t *testing.T) {
	r := start(t, request(spec.KindUpgrade, 1, "a"), saga.Options{})
	before := r.s
	next, eff := saga.Apply(before, saga.Input{Kind: "poke", At: t0})
	if eff.Ignored == "" || next.Seq != before.Seq || len(eff.Commands)+len(eff.Events) != 0 {
		t.Fatalf("unknown input applied: %+v", eff)
	}
	// Apply must not modify its argument either.
	steps := len(before.Steps)
	saga.Apply(before, saga.Input{Kind: saga.InputReport, At: t0, Result: result(r.last.Commands[0], events.StatusSucceeded)})
	if len(before.Steps) != steps || before.Steps[0].Status != saga.StepDispatched {
		t.Fatalf("Apply modified its input: %+v", before.Steps[0])
	}
}

func TestMaintenanceWindow(t *testing.T) {
	// t0 is Wednesday 12:00 UTC; the window is every day 22:00-23:00 UTC.
	nightly := []spec.Window{{Start: "22:00", End: "23:00"}}
	opens := time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC)
	t.Run("waits for it to open", func(t *testing.T) {
		req := request(spec.KindUpgrade, 1, "a")
		req.Spec.Windows = nightly
		r := start(t, req, saga.Options{})
		eff := r.report(r.last.Commands[0], events.StatusSucceeded)
		r.state(saga.StateAwaitingWindow)
		if !r.s.Deadline.Equal(opens) || len(eff.Wake) != 1 || !eff.Wake[0].Equal(opens) {
			t.Fatalf("deadline %v wake %v", r.s.Deadline, eff.Wake)
		}
		if r.s.Reason != "next window opens 2026-11-25T22:00:00Z" {
			t.Fatalf("reason %q", r.s.Reason)
		}
		r.ignored(saga.Input{Kind: saga.InputTick, At: opens.Add(-time.Second)})
		r.must(saga.Input{Kind: saga.InputTick, At: opens.Add(time.Second)})
		r.state(saga.StateBackingUp)
	})
	t.Run("open now", func(t *testing.T) {
		req := request(spec.KindUpgrade, 1, "a")
		req.Spec.Windows = []spec.Window{{Start: "11:00", End: "13:00"}}
		r := start(t, req, saga.Options{})
		r.answer(events.StatusSucceeded)
		r.state(saga.StateBackingUp)
	})
	t.Run("fails fast when the deadline comes first", func(t *testing.T) {
		req := request(spec.KindUpgrade, 1, "a")
		req.Spec.Windows = nightly
		req.Spec.Deadline = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
		r := start(t, req, saga.Options{})
		r.answer(events.StatusSucceeded)
		r.state(saga.StateFailed)
		if r.s.Reason != "the next maintenance window opens 2026-11-25T22:00:00Z, after the deadline 2026-11-25T20:00:00Z; nothing was changed" {
			t.Fatalf("reason %q", r.s.Reason)
		}
	})
	t.Run("a late wake-up past the window and the deadline fails", func(t *testing.T) {
		req := request(spec.KindUpgrade, 1, "a")
		req.Spec.Windows = nightly
		req.Spec.Deadline = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
		r := start(t, req, saga.Options{})
		r.answer(events.StatusSucceeded)
		r.state(saga.StateAwaitingWindow)
		r.must(saga.Input{Kind: saga.InputTick, At: opens.Add(90 * time.Minute)}) // the coordinator was down
		r.state(saga.StateFailed)
	})
	t.Run("the environment's windows and the request's must both be open", func(t *testing.T) {
		req := request(spec.KindUpgrade, 1, "a")
		req.Spec.Windows = []spec.Window{{Start: "21:00", End: "23:00"}}
		env := []spec.Window{{Days: []string{"thu"}, Start: "00:00", End: "23:59"}}
		r := start(t, req, saga.Options{Windows: env})
		r.answer(events.StatusSucceeded)
		r.state(saga.StateAwaitingWindow)
		if want := time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC); !r.s.Deadline.Equal(want) {
			t.Fatalf("waits until %v, want Thursday 21:00", r.s.Deadline)
		}
	})
	t.Run("cancel while waiting", func(t *testing.T) {
		req := request(spec.KindUpgrade, 1, "a")
		req.Spec.Windows = nightly
		r := start(t, req, saga.Options{})
		r.answer(events.StatusSucceeded)
		r.must(saga.Input{Kind: saga.InputCancel, Actor: "ops"})
		r.state(saga.StateCancelled)
	})
	t.Run("approval first, then the window", func(t *testing.T) {
		req := request(spec.KindUpgrade, 1, "a")
		req.Spec.Windows = nightly
		req.Spec.Approval.Required = true // the request asks, whatever the policy
		r := start(t, req, saga.Options{})
		r.answer(events.StatusSucceeded)
		r.state(saga.StateAwaitingApproval)
		r.must(saga.Input{Kind: saga.InputApprove, Actor: "carol"})
		r.state(saga.StateAwaitingWindow)
	})
}

func TestEveryBatchStartsInAWindow(t *testing.T) {
	// Every day 12:00-12:10 UTC: batch 1 deploys at once (t0 is 12:00),
	// batch 2 only the next day.
	req := request(spec.KindUpgrade, 1, "a", "b")
	req.Spec.Windows = []spec.Window{{Start: "12:00", End: "12:10"}}
	between := func(t *testing.T, req spec.Request) *run {
		r := start(t, req, saga.Options{})
		r.answer(events.StatusSucceeded) // precheck
		r.answer(events.StatusSucceeded) // backup
		r.answer(events.StatusSucceeded) // deploy a
		r.now = t0.Add(15 * time.Minute)
		r.answer(events.StatusSucceeded) // verify a, after the window closed
		return r
	}
	t.Run("waits, then deploys the next batch", func(t *testing.T) {
		r := between(t, req)
		r.state(saga.StateAwaitingWindow)
		next := t0.Add(24 * time.Hour)
		if !r.s.Deadline.Equal(next) {
			t.Fatalf("waits until %v", r.s.Deadline)
		}
		r.must(saga.Input{Kind: saga.InputTick, At: next})
		r.state(saga.StateDeploying)
		r.sent("deploy.apply.b")
	})
	t.Run("a cancel rolls back the deployed batch", func(t *testing.T) {
		r := between(t, req)
		r.state(saga.StateAwaitingWindow)
		r.must(saga.Input{Kind: saga.InputCancel, Actor: "ops"})
		r.state(saga.StateRollingBack)
		r.sent("deploy.rollback.a")
	})
	t.Run("a deadline before the next window rolls back", func(t *testing.T) {
		late := req
		late.Spec.Deadline = t0.Add(6 * time.Hour)
		r := between(t, late)
		r.state(saga.StateRollingBack)
		r.sent("deploy.rollback.a")
		if !strings.Contains(r.s.Reason, "after the deadline") {
			t.Fatalf("reason %q", r.s.Reason)
		}
	})
}

func TestReportsAreClippedInTheSaga(t *testing.T) {
	r := start(t, request(spec.KindUpgrade, 1, "a"), saga.Options{})
	res := result(r.last.Commands[0], events.StatusFailed)
	res.Error = strings.Repeat("é", 400)
	for i := range saga.MaxReportLines + 24 {
		res.Report = append(res.Report, events.ReportLine{Name: fmt.Sprint("hook", i), Detail: strings.Repeat("x", 5000),
			Value: strings.Repeat("v", 5000), Threshold: strings.Repeat("t", 5000)})
	}
	res.Output = map[string]string{"log": strings.Repeat("y", 5000)}
	r.must(saga.Input{Kind: saga.InputReport, Result: res})
	st := r.s.Steps[0]
	if len(st.Report) != saga.MaxReportLines+1 || len(st.Report[0].Detail) > saga.MaxText+3 || len(st.Output["log"]) > saga.MaxText+3 ||
		len(st.Report[0].Value) > saga.MaxText+3 || len(st.Report[0].Threshold) > saga.MaxText+3 {
		t.Fatalf("kept %d lines, detail %d bytes, output %d bytes", len(st.Report), len(st.Report[0].Detail), len(st.Output["log"]))
	}
	if !utf8.ValidString(st.Error) || len(st.Error) > saga.MaxText+3 {
		t.Fatalf("error clipped to %d bytes, valid UTF-8 %v", len(st.Error), utf8.ValidString(st.Error))
	}
	if st.Report[saga.MaxReportLines-1].Name != fmt.Sprint("hook", saga.MaxReportLines-1) ||
		st.Report[saga.MaxReportLines].Detail != "24 more lines in the step's event" {
		t.Fatalf("last line %+v", st.Report[saga.MaxReportLines])
	}
}

func TestRollBackSaysWhyItBegan(t *testing.T) {
	nightly := []spec.Window{{Start: "12:00", End: "12:10"}} // t0 is 12:00
	between := func(t *testing.T, deadline time.Time) *run {
		req := request(spec.KindUpgrade, 1, "a", "b")
		req.Spec.Windows, req.Spec.Deadline = nightly, deadline
		r := start(t, req, saga.Options{})
		r.answer(events.StatusSucceeded) // precheck
		r.answer(events.StatusSucceeded) // backup
		r.answer(events.StatusSucceeded) // deploy a
		r.now = t0.Add(15 * time.Minute)
		return r
	}
	for _, tc := range []struct {
		name string
		act  func(t *testing.T) saga.Effects
		want saga.Cause
	}{
		{"deploy failed", func(t *testing.T) saga.Effects {
			r := start(t, request(spec.KindUpgrade, 1, "a"), saga.Options{})
			r.answer(events.StatusSucceeded)
			r.answer(events.StatusSucceeded)
			return r.report(r.last.Commands[0], events.StatusFailed)
		}, saga.CauseDeployFailed},
		{"deploy timed out", func(t *testing.T) saga.Effects {
			r := start(t, request(spec.KindUpgrade, 1, "a"), saga.Options{})
			r.answer(events.StatusSucceeded)
			r.answer(events.StatusSucceeded)
			return r.must(saga.Input{Kind: saga.InputTick, At: r.s.Deadline})
		}, saga.CauseDeployTimeout},
		{"verify failed", func(t *testing.T) saga.Effects {
			r := upTo(t)
			return r.report(r.last.Commands[0], events.StatusFailed)
		}, saga.CauseVerifyFailed},
		{"verify timed out", func(t *testing.T) saga.Effects {
			r := upTo(t)
			return r.must(saga.Input{Kind: saga.InputTick, At: r.s.Deadline})
		}, saga.CauseVerifyTimeout},
		{"cancelled", func(t *testing.T) saga.Effects {
			r := upTo(t)
			return r.must(saga.Input{Kind: saga.InputCancel, Actor: "ops"})
		}, saga.CauseCancelled},
		{"cancelled while awaiting the next window", func(t *testing.T) saga.Effects {
			r := between(t, time.Time{})
			r.answer(events.StatusSucceeded) // verify a
			r.state(saga.StateAwaitingWindow)
			return r.must(saga.Input{Kind: saga.InputCancel, Actor: "ops"})
		}, saga.CauseCancelled},
		{"no window before the deadline, on verifying", func(t *testing.T) saga.Effects {
			r := between(t, t0.Add(6*time.Hour))
			return r.report(r.last.Commands[0], events.StatusSucceeded)
		}, saga.CauseWindow},
		{"no window before the deadline, on a late wake-up while awaiting it", func(t *testing.T) saga.Effects {
			r := between(t, t0.Add(30*time.Hour))
			r.answer(events.StatusSucceeded) // verify a
			r.state(saga.StateAwaitingWindow)
			// The coordinator was down while the window was open: the
			// next one is after the deadline.
			return r.must(saga.Input{Kind: saga.InputTick, At: t0.Add(24*time.Hour + 20*time.Minute)})
		}, saga.CauseWindow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eff := tc.act(t)
			if !strings.Contains(kinds(eff.Events), string(saga.StateRollingBack)) {
				t.Fatalf("no roll-back began: %q", kinds(eff.Events))
			}
			if eff.RollBack != tc.want {
				t.Fatalf("roll-back cause %q, want %q", eff.RollBack, tc.want)
			}
		})
	}
}

// A batch may lose up to its tolerance: each failed target is rolled back
// alone and left out of the rest; past the tolerance, every batch rolls
// back, the targets rolled back alone not again.
func TestFailuresWithinABatchsToleranceRollBackThoseTargetsAlone(t *testing.T) {
	req := request(spec.KindUpgrade, 0, "a", "b", "c", "d", "e", "f", "g", "h", "i", "j")
	req.Spec.Rollout.BatchSize = 0
	req.Spec.Rollout.BatchPercent = 50
	req.Spec.Rollout.MaxFailedPercent = 20 // one of five
	req.Spec.Backup.Skip = true
	req = req.WithDefaults()
	if err := req.Validate(); err != nil {
		t.Fatal(err)
	}
	r := start(t, req, saga.Options{})
	if len(r.s.Batches) != 2 || len(r.s.Batches[0]) != 5 {
		t.Fatalf("batches %v", r.s.Batches)
	}
	r.answer(events.StatusSucceeded) // prechecks
	r.state(saga.StateDeploying)
	deploys := r.last.Commands
	r.report(deploys[1], events.StatusFailed) // b fails: tolerated
	r.state(saga.StateDeploying)
	r.sent("deploy.rollback.b")
	lone := r.last.Commands[0]
	if lone.Compensates != deploys[1].Step || !lone.NotAfter.IsZero() {
		t.Fatalf("lone roll-back %+v", lone)
	}
	for _, c := range append(deploys[:1:1], deploys[2:]...) {
		r.must(saga.Input{Kind: saga.InputReport, Result: result(c, events.StatusSucceeded)})
	}
	r.state(saga.StateDeploying) // the lone roll-back is still running
	r.must(saga.Input{Kind: saga.InputReport, Result: result(lone, events.StatusSucceeded)})
	r.state(saga.StateVerifying)
	r.sent("verify.probe.a", "verify.probe.c", "verify.probe.d", "verify.probe.e")
	r.answer(events.StatusSucceeded)
	r.state(saga.StateDeploying)
	r.sent("deploy.apply.f", "deploy.apply.g", "deploy.apply.h", "deploy.apply.i", "deploy.apply.j")
	r.answer(events.StatusSucceeded)
	r.state(saga.StateVerifying)
	probes := r.last.Commands
	r.report(probes[0], events.StatusFailed) // f: tolerated, rolled back alone
	r.sent("deploy.rollback.f")
	r.report(probes[1], events.StatusFailed) // g: one too many
	r.state(saga.StateRollingBack)
	if !strings.Contains(r.s.Reason, "2 of the 5 targets of batch 2 failed, 1 tolerated (20%)") {
		t.Fatalf("reason %q", r.s.Reason)
	}
	var undone []string
	for _, id := range r.s.Plan {
		st, _ := r.s.Step(id)
		undone = append(undone, st.Target)
	}
	if got := strings.Join(undone, ","); strings.Contains(got, "b") || strings.Contains(got, "f") || len(undone) != 8 {
		t.Fatalf("roll-back plan %v: b and f were rolled back alone already", undone)
	}
	if !slices.Equal(r.s.SetAside, []string{"b", "f"}) {
		t.Fatalf("set aside %v", r.s.SetAside)
	}
}

// A whole batch failing always rolls back, whatever the tolerance; and the
// saga succeeds saying which targets were set aside.
func TestAWholeBatchFailingRollsBackAndSuccessNamesTheTargetsSetAside(t *testing.T) {
	req := request(spec.KindUpgrade, 2, "a", "b")
	req.Spec.Rollout.MaxFailedPercent = 100
	req.Spec.Backup.Skip = true
	r := start(t, req, saga.Options{})
	r.answer(events.StatusSucceeded)
	r.answer(events.StatusFailed)
	r.state(saga.StateRollingBack)

	r = start(t, req, saga.Options{})
	r.answer(events.StatusSucceeded)
	deploys := r.last.Commands
	r.report(deploys[0], events.StatusSucceeded)
	r.report(deploys[1], events.StatusFailed)
	r.answer(events.StatusSucceeded) // b's lone roll-back
	r.state(saga.StateVerifying)
	r.answer(events.StatusSucceeded)
	r.state(saga.StateSucceeded)
	if !strings.Contains(r.s.Reason, "1 of 2 targets failed within their batch's tolerance and were rolled back alone: b") {
		t.Fatalf("reason %q", r.s.Reason)
	}
}
