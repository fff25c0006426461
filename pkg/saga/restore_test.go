package saga_test

import (
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
)

// restoreRequest asks to put back, on targets, the backup of saga from.
func restoreRequest(from string, targets ...string) spec.Request {
	req := request(spec.KindMaintenance, 1, targets...)
	req.Spec.Maintenance = &spec.Maintenance{Actions: []string{spec.ActionRestore}, Backup: from}
	return req
}

// backupOf checks that every command of the last transition restores from
// (or checks) the backup of saga want ("": the saga's own).
func (r *run) backupOf(want string) {
	r.t.Helper()
	for _, c := range r.last.Commands {
		if c.Upgrade.Backup != want {
			r.t.Fatalf("%s names the backup of %q, want %q", c.Step, c.Upgrade.Backup, want)
		}
	}
}

func TestARestoreChecksTheBackupBacksUpRestoresAndVerifies(t *testing.T) {
	r := start(t, restoreRequest("old", "a", "b"), saga.Options{})
	r.state(saga.StatePrechecking)
	if e := r.last.Events[0]; e.Reason != "restore of demo from the backup of saga old" {
		t.Fatalf("requested %q", e.Reason)
	}
	r.sent("precheck.check.a", "precheck.check.b", "backup.check.a", "backup.check.b")
	r.backupOf("old")
	if len(r.last.Wake) != 1 {
		t.Fatalf("wakes %v: one deadline for the whole precheck", r.last.Wake)
	}
	r.report(r.last.Commands[0], events.StatusSucceeded)
	r.report(r.last.Commands[1], events.StatusSucceeded)
	r.state(saga.StatePrechecking) // the backup checks are not in yet
	for _, c := range r.cmds[2:4] {
		r.report(c, events.StatusSucceeded)
	}
	// What the restore replaces is backed up first, as this saga's own.
	r.state(saga.StateBackingUp)
	r.sent("backup.archive.a", "backup.archive.b")
	r.backupOf("old") // kept by retention while the restore runs
	r.answer(events.StatusSucceeded)
	r.state(saga.StateDeploying)
	r.sent("backup.restore.a")
	r.backupOf("old")
	if c := r.last.Commands[0]; c.Compensates != "" || c.NotAfter.IsZero() {
		t.Fatalf("the restore is a forward step: %+v", c)
	}
	r.answer(events.StatusSucceeded)
	r.state(saga.StateVerifying)
	r.sent("verify.probe.a")
	r.answer(events.StatusSucceeded)
	r.sent("backup.restore.b")
	r.answer(events.StatusSucceeded)
	r.sent("verify.probe.b")
	r.answer(events.StatusSucceeded)
	r.state(saga.StateSucceeded)
	for _, c := range r.cmds {
		if c.Phase == events.Deploy {
			t.Fatalf("a restore sent %s to deploy", c.Step)
		}
	}
}

func TestARestoreOfAMissingBackupFailsAtPrecheckWithNothingChanged(t *testing.T) {
	r := start(t, restoreRequest("nobackup", "a"), saga.Options{})
	r.report(r.last.Commands[0], events.StatusSucceeded)
	r.report(r.last.Commands[1], events.StatusFailed)
	r.state(saga.StateFailed)
	if !strings.HasPrefix(r.s.Reason, "backup check on a failed") || !strings.HasSuffix(r.s.Reason, "nothing was changed") {
		t.Fatalf("reason %q", r.s.Reason)
	}
	if len(r.cmds) != 2 {
		t.Fatalf("sent %v", names(r.cmds))
	}
}

func TestAFailedRestoreIsUndoneByItsOwnSafetyBackup(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(r *run)
	}{
		{"the restore fails", func(r *run) { r.answer(events.StatusFailed) }},
		{"its verification fails", func(r *run) {
			r.answer(events.StatusSucceeded)
			r.sent("verify.probe.a")
			r.answer(events.StatusFailed)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, restoreRequest("old", "a"), saga.Options{})
			r.answer(events.StatusSucceeded) // precheck and backup check
			r.sent("backup.archive.a")
			r.answer(events.StatusSucceeded)
			r.sent("backup.restore.a")
			tc.fail(r)
			r.state(saga.StateRollingBack)
			r.sent("backup.restore.a")
			r.backupOf("") // the compensation restores this saga's backup
			if c := r.last.Commands[0]; c.Compensates != "s1.backup.archive.a.1" || c.Step != "s1.backup.restore.a.2" {
				t.Fatalf("compensation %+v", c)
			}
			r.answer(events.StatusSucceeded)
			r.state(saga.StateRolledBack)
		})
	}
}

func TestARestoreCancelledBeforeItRunsChangesNothing(t *testing.T) {
	r := start(t, restoreRequest("old", "a"), saga.Options{})
	r.answer(events.StatusSucceeded)
	r.state(saga.StateBackingUp)
	r.must(saga.Input{Kind: saga.InputCancel, Actor: "op"})
	r.state(saga.StateCancelled)
}
