package e2e_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/api"
)

var production = coordinator.Policy{Environments: map[string]coordinator.Environment{
	"production": {Approval: true, ApprovalTimeout: spec.Duration{Duration: time.Hour}},
}}

func decide(t *testing.T, r *rig, id string, op events.ControlOp, actor, comment string) {
	t.Helper()
	if _, err := r.s.Client.Decide(context.Background(), api.ControlRequest{ID: id, Op: op, Actor: actor, Comment: comment}); err != nil {
		t.Fatalf("%s %s: %v", op, id, err)
	}
}

func TestApprovalGate(t *testing.T) {
	endToEnd(t)
	r := newRigWith(t, "1.0", production)
	req := r.d.Request("1.0", "1.1")
	req.Metadata.Environment = "production"
	id := r.submit(req)
	r.reach(id, saga.StateAwaitingApproval)
	if r.serving() != "1.0" {
		t.Fatal("deployed before the approval")
	}
	decide(t, r, id, events.OpApprove, "carol", "CAB-1234")
	if _, end := r.end(id); end.Kind != string(saga.StateSucceeded) || r.serving() != "1.1" {
		t.Fatalf("ended %s serving %s", end.Kind, r.serving())
	}
	// Recorded in the audit log, and announced.
	hist, _ := r.s.Client.History(context.Background(), id)
	var approvals int
	for _, e := range hist {
		if strings.Contains(string(e.Event), `"kind":"approved"`) && strings.Contains(string(e.Event), `"actor":"carol"`) && strings.Contains(string(e.Event), "CAB-1234") {
			approvals++
		}
	}
	if approvals != 1 {
		t.Fatalf("%d approvals in the audit log", approvals)
	}
	// The notify service follows at its own pace: wait for the notices.
	var n int
	natstest.Eventually(t, natstest.Patience, "the approval announced", func() bool {
		n = len(natstest.ReadEvents[events.Notice](t, r.s.JS, events.StreamNotify, "upshift.notify.*."+id+".approved", events.TypeNotice))
		return n >= 2
	})
	if n != 2 {
		t.Fatalf("%d approval notices, want one per team", n)
	}
}

func TestRejectEndsTheSagaWithNothingChanged(t *testing.T) {
	endToEnd(t)
	r := newRigWith(t, "1.0", production)
	req := r.d.Request("1.0", "1.1")
	req.Metadata.Environment = "production"
	id := r.submit(req)
	r.reach(id, saga.StateAwaitingApproval)
	decide(t, r, id, events.OpReject, "dave", "change freeze")
	_, end := r.end(id)
	if end.Kind != string(saga.StateRejected) || end.Reason != "rejected by dave: change freeze" || r.serving() != "1.0" {
		t.Fatalf("ended %s (%s) serving %s", end.Kind, end.Reason, r.serving())
	}
	if _, err := r.s.Client.Decide(context.Background(), api.ControlRequest{ID: id, Op: events.OpApprove, Actor: "x"}); !errors.Is(err, api.ErrTooLate) {
		t.Fatalf("approving a rejected saga: %v", err)
	}
}

func TestWindowWaitThenDeploy(t *testing.T) {
	endToEnd(t)
	r := newRig(t, "1.0")
	req := r.d.Request("1.0", "1.1")
	// Far enough ahead that the precheck, even on a loaded machine, ends
	// before it opens and the saga is seen waiting.
	opens := time.Now().Add(20 * time.Second).UTC()
	req.Spec.Windows = []spec.Window{{From: opens, Until: opens.Add(time.Hour)}}
	id := r.submit(req)
	s := r.reach(id, saga.StateAwaitingWindow)
	if r.serving() != "1.0" || !strings.HasPrefix(s.Reason, "next window opens") {
		t.Fatalf("reason %q serving %s", s.Reason, r.serving())
	}
	_, end := r.end(id) // a scheduled deadline wakes it
	if end.Kind != string(saga.StateSucceeded) || r.serving() != "1.1" {
		t.Fatalf("ended %s serving %s", end.Kind, r.serving())
	}
	v, _ := r.s.Client.Get(context.Background(), id)
	if first := v.Saga.Steps[1]; first.Phase != events.Backup || first.DispatchedAt.Before(opens) {
		t.Fatalf("backup dispatched at %v, the window opened at %v", first.DispatchedAt, opens)
	}
}

func TestWindowAfterTheDeadlineFailsAtOnce(t *testing.T) {
	endToEnd(t)
	r := newRig(t, "1.0")
	req := r.d.Request("1.0", "1.1")
	tomorrow := time.Now().Add(24 * time.Hour).UTC()
	req.Spec.Windows = []spec.Window{{From: tomorrow, Until: tomorrow.Add(time.Hour)}}
	req.Spec.Deadline = time.Now().Add(time.Hour).UTC()
	_, end := r.run(req)
	if end.Kind != string(saga.StateFailed) || !strings.Contains(end.Reason, "after the deadline") || r.serving() != "1.0" {
		t.Fatalf("ended %s (%s) serving %s", end.Kind, end.Reason, r.serving())
	}
}

func TestRehearsalGate(t *testing.T) {
	endToEnd(t)
	r := newRigWith(t, "1.0", coordinator.Policy{Environments: map[string]coordinator.Environment{
		"production": {Rehearsal: &coordinator.Rehearsal{Environment: "test"}},
	}})
	prod := r.d.Request("1.0", "1.1")
	prod.Metadata.Environment = "production"
	_, end := r.run(prod)
	if end.Kind != events.KindInvalid || !strings.Contains(end.Reason, "production requires a rehearsal: no upgrade of demo-app with artifact "+prod.Spec.Artifact.Digest+" succeeded in test") {
		t.Fatalf("ended %s: %s", end.Kind, end.Reason)
	}
	// Rehearse in test (the same target stands in for the test host).
	if _, end := r.run(r.d.Request("1.0", "1.1")); end.Kind != string(saga.StateSucceeded) {
		t.Fatalf("rehearsal ended %s", end.Kind)
	}
	if err := r.d.Install(context.Background(), "1.0"); err != nil {
		t.Fatal(err)
	}
	if _, end := r.run(prod); end.Kind != string(saga.StateSucceeded) || r.serving() != "1.1" {
		t.Fatalf("production after the rehearsal ended %s: %s", end.Kind, end.Reason)
	}
}

func TestCancelWhileWaitingForTheWindow(t *testing.T) {
	endToEnd(t)
	r := newRig(t, "1.0")
	req := r.d.Request("1.0", "1.1")
	later := time.Now().Add(time.Hour).UTC()
	req.Spec.Windows = []spec.Window{{From: later, Until: later.Add(time.Hour)}}
	id := r.submit(req)
	r.reach(id, saga.StateAwaitingWindow)
	decide(t, r, id, events.OpCancel, "erin", "superseded")
	_, end := r.end(id)
	if end.Kind != string(saga.StateCancelled) || !strings.HasPrefix(end.Reason, "cancelled by erin: superseded") || r.serving() != "1.0" {
		t.Fatalf("ended %s (%s) serving %s", end.Kind, end.Reason, r.serving())
	}
}

func TestCancelDuringTheDeployRollsBack(t *testing.T) {
	endToEnd(t)
	// Fifty good probes to pass: verification lasts ten seconds, time for
	// the cancel to land while it runs.
	r := newRigWith(t, "1.0", coordinator.Policy{}, func(t *targets.Target) { t.Health.Successes = 50 })
	req := r.d.Request("1.0", "1.1")
	req.Spec.Timeouts.Verify = spec.Duration{Duration: time.Minute}
	id := r.submit(req)
	r.reach(id, saga.StateVerifying)
	decide(t, r, id, events.OpCancel, "frank", "wrong build")
	_, end := r.end(id)
	if end.Kind != string(saga.StateRolledBack) || !strings.HasPrefix(end.Reason, "cancelled by frank: wrong build") || r.serving() != "1.0" {
		t.Fatalf("ended %s (%s) serving %s", end.Kind, end.Reason, r.serving())
	}
}
