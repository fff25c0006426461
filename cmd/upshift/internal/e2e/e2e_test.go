package e2e_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/backup"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

func TestUpgradeSucceeds(t *testing.T) {
	endToEnd(t)
	r := newRig(t, "1.0")
	id, end := r.run(r.d.Request("1.0", "1.1"))
	if end.Kind != string(saga.StateSucceeded) {
		t.Fatalf("saga %s ended %s: %s", id, end.Kind, end.Reason)
	}
	if v := r.serving(); v != "1.1" {
		t.Fatalf("serving %s", v)
	}
	if cur, _ := r.d.Target.CurrentVersion(); cur != "1.1" {
		t.Fatalf("current is %s", cur)
	}
	// The verified backup is in the Object Store, and no longer on the disk.
	if _, err := (&backup.Store{JS: r.s.JS}).Manifest(context.Background(), r.d.Target.Name, id); err != nil {
		t.Fatalf("no verified backup: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.d.Target.Backup.Dir, id)); !os.IsNotExist(err) {
		t.Fatalf("the local copy of the backup is left: %v", err)
	}
	v, err := r.s.Client.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range v.Saga.Steps {
		if st.Status != saga.StepSucceeded {
			t.Errorf("step %s %s", st.ID, st.Status)
		}
	}
	if len(v.Saga.Steps) != 4 {
		t.Fatalf("%d steps", len(v.Saga.Steps))
	}
	natstest.Eventually(t, natstest.Patience, "outcome counted", func() bool {
		return r.metric("upshift_sagas_total", "outcome", "succeeded") == 1
	})
}

func TestFailedVerificationRollsBackAndTellsTheTeams(t *testing.T) {
	endToEnd(t)
	r := newRig(t, "1.1")
	id, end := r.run(r.d.Request("1.1", "1.2"))
	if end.Kind != string(saga.StateRolledBack) || !strings.Contains(end.Reason, "verify probe on demo failed") {
		t.Fatalf("saga %s ended %s: %s", id, end.Kind, end.Reason)
	}
	if v := r.serving(); v != "1.1" {
		t.Fatalf("serving %s after the roll-back", v)
	}
	if cur, _ := r.d.Target.CurrentVersion(); cur != "1.1" {
		t.Fatalf("current is %s", cur)
	}
	// Both teams hear of the failure and of the roll-back. Notices are
	// published team after team, after the saga has ended: wait for them.
	var want, got []string
	for _, team := range []string{"platform", "qa"} {
		for _, kind := range []string{"step_failed:warning", "rolling_back:warning", "rolled_back:warning"} {
			want = append(want, team+":"+kind)
		}
	}
	natstest.Eventually(t, natstest.Patience, "both teams told of the failure and the roll-back", func() bool {
		got = nil
		for _, n := range natstest.ReadEvents[events.Notice](t, r.s.JS, events.StreamNotify, "upshift.notify.*."+id+".>", events.TypeNotice) {
			got = append(got, n.Team+":"+n.Kind+":"+n.Severity)
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				return false
			}
		}
		return true
	})
}

func TestBadDigestFailsPrecheckAndDeploysNothing(t *testing.T) {
	endToEnd(t)
	r := newRig(t, "1.0")
	req := r.d.Request("1.0", "1.1")
	req.Spec.Artifact.Digest = "sha256:" + strings.Repeat("0", 64)
	id, end := r.run(req)
	if end.Kind != string(saga.StateFailed) || !strings.Contains(end.Reason, "precheck check on demo failed") {
		t.Fatalf("saga %s ended %s: %s", id, end.Kind, end.Reason)
	}
	v, _ := r.s.Client.Get(context.Background(), id)
	if len(v.Saga.Steps) != 1 || !strings.Contains(v.Saga.Steps[0].Report[0].Detail, "digest mismatch") {
		t.Fatalf("steps %+v", v.Saga.Steps)
	}
	if _, err := os.Stat(r.d.Target.Release("1.1")); !os.IsNotExist(err) {
		t.Fatalf("release 1.1 exists: %v", err)
	}
	if r.serving() != "1.0" {
		t.Fatal("no longer serving 1.0")
	}
}

func TestRedeliveredCommandExecutesOnce(t *testing.T) {
	endToEnd(t)
	r := newRig(t, "1.0")
	id, end := r.run(r.d.Request("1.0", "1.1"))
	if end.Kind != string(saga.StateSucceeded) {
		t.Fatalf("ended %s", end.Kind)
	}
	starts := func() int {
		b, _ := os.ReadFile(filepath.Join(r.d.Target.Root, "logs", "app.log"))
		return strings.Count(string(b), "listening")
	}
	before := starts()
	// The apply command again, as a consumer would get it redelivered: same
	// envelope, under another Nats-Msg-Id so the stream keeps it.
	hist, err := r.s.Client.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(hist, func(e sagastore.Entry) bool {
		return e.Direction == sagastore.Out && e.Subject == "upshift.cmd.deploy.apply.demo"
	})
	if i < 0 {
		t.Fatal("no apply command in the audit log")
	}
	for range 2 {
		if _, err := r.s.JS.Publish(context.Background(), hist[i].Subject, hist[i].Event); err != nil {
			t.Fatal(err)
		}
	}
	natstest.Eventually(t, natstest.Patience, "answered from the record", func() bool {
		return r.metric("upshift_commands_total", "service", "deploy", "action", "apply", "result", "duplicate") == 2
	})
	if n := r.metric("upshift_commands_total", "service", "deploy", "action", "apply", "result", "succeeded"); n != 1 {
		t.Fatalf("apply executed %v times", n)
	}
	if after := starts(); after != before {
		t.Fatalf("the application was started %d more times", after-before)
	}
	if r.serving() != "1.1" {
		t.Fatal("no longer serving 1.1")
	}
}

func TestMalformedEventOnEveryStreamIsDeadLetteredAndWorkGoesOn(t *testing.T) {
	endToEnd(t)
	r := newRig(t, "1.0")
	ctx := context.Background()
	garbage := map[string]string{ // subject -> the consumer that must dead-letter it
		"upshift.request.platform":                                        "REQUESTS/coordinator-requests",
		"upshift.control.x.cancel":                                        "REQUESTS/coordinator-requests",
		"upshift.cmd.precheck.check.demo":                                 "COMMANDS/precheck-demo",
		"upshift.cmd.backup.archive.demo":                                 "COMMANDS/backup-demo",
		"upshift.cmd.deploy.apply.demo":                                   "COMMANDS/deploy-demo",
		"upshift.cmd.verify.probe.demo":                                   "COMMANDS/verify-demo",
		"upshift.evt.x.deploy.succeeded":                                  "EVENTS/coordinator-results",
		"upshift.evt.x.saga.failed":                                       "EVENTS/notify-router",
		"upshift.notify.platform.x.failed":                                "NOTIFY/notify-deliver",
		"upshift.timer.fire.x":                                            "TIMERS/coordinator-timers",
		events.MaxDeliveriesSubject(events.StreamCommands, "deploy-demo"): "ADVISORIES/deploy-demo" + consumer.LostSuffix,
	}
	for subj := range garbage {
		if _, err := r.s.JS.Publish(ctx, subj, []byte(`{"specversion":"1.0","id":"x"`)); err != nil {
			t.Fatal(err)
		}
	}
	id, end := r.run(r.d.Request("1.0", "1.1"))
	if end.Kind != string(saga.StateSucceeded) {
		t.Fatalf("saga %s ended %s: %s", id, end.Kind, end.Reason)
	}
	var got []string
	natstest.Eventually(t, natstest.Patience, "every one dead-lettered", func() bool {
		got = nil
		for _, dl := range natstest.ReadEvents[events.DeadLetter](t, r.s.JS, events.StreamDeadLetter, "upshift.dlq.>", events.TypeDeadLetter) {
			if want, ok := garbage[dl.Subject]; ok && want == dl.Stream+"/"+dl.Consumer && strings.Contains(dl.Error, "malformed") {
				got = append(got, dl.Subject)
			}
		}
		return len(got) == len(garbage)
	})
	// Counted once the dead letter is out: wait for the count too.
	var n float64
	natstest.Eventually(t, natstest.Patience, "every one counted terminated", func() bool {
		n = r.metric("upshift_consumer_messages_total", "result", "terminated")
		return n >= float64(len(garbage))
	})
	if n != float64(len(garbage)) {
		t.Fatalf("%v terminated, want %d", n, len(garbage))
	}
}

func TestArtifactFromAnUnallowedSourceIsNotRead(t *testing.T) {
	endToEnd(t)
	r := newRig(t, "1.0")
	req := r.d.Request("1.0", "1.1")
	req.Spec.Artifact.URL = "file:///etc/passwd"
	id, end := r.run(req)
	if end.Kind != string(saga.StateFailed) || r.serving() != "1.0" {
		t.Fatalf("saga %s ended %s: %s", id, end.Kind, end.Reason)
	}
	v, _ := r.s.Client.Get(context.Background(), id)
	line := v.Saga.Steps[0].Report[0]
	if line.OK || !strings.Contains(line.Detail, "artifact source not allowed: file:///etc/passwd is not under file://") {
		t.Fatalf("report %+v", line)
	}
}

// The demo's two upgrades, on the PostgreSQL store: what `make demo` does
// with UPSHIFT_STORE=postgres.
func TestDemoOnPostgres(t *testing.T) {
	endToEnd(t)
	r := newRigOn(t, pgtest.Database(t), "1.0", coordinator.Policy{})
	if _, end := r.run(r.d.Request("1.0", "1.1")); end.Kind != string(saga.StateSucceeded) || r.serving() != "1.1" {
		t.Fatalf("1.1 ended %s (%s)", end.Kind, end.Reason)
	}
	id, end := r.run(r.d.Request("1.1", "1.2"))
	if end.Kind != string(saga.StateRolledBack) || r.serving() != "1.1" {
		t.Fatalf("1.2 ended %s (%s)", end.Kind, end.Reason)
	}
	hist, err := r.s.Client.History(context.Background(), id)
	if err != nil || len(hist) < 20 {
		t.Fatalf("audit log of %d entries: %v", len(hist), err)
	}
}
