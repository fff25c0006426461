package saga_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
)

func confirmRequest(roles ...string) spec.Request {
	req := request(spec.KindUpgrade, 1, "a", "b")
	req.Spec.Confirm = &spec.Confirm{Roles: roles, Timeout: spec.Duration{Duration: 4 * time.Hour}}
	return req
}

func confirm(role, by string) saga.Input {
	return saga.Input{Kind: saga.InputConfirm, Role: role, Actor: by, Comment: "on hand"}
}

func TestConfirmations(t *testing.T) {
	t.Run("waits for every role, then backs up", func(t *testing.T) {
		r := start(t, confirmRequest("dev", "dba"), saga.Options{})
		r.answer(events.StatusSucceeded)
		r.state(saga.StateAwaitingConfirmation)
		if !r.s.Deadline.Equal(t0.Add(4*time.Hour)) || !strings.Contains(r.s.Reason, "waiting for dev, dba to confirm") {
			t.Fatalf("deadline %v reason %q", r.s.Deadline, r.s.Reason)
		}
		r.now = t0.Add(time.Minute)
		eff := r.must(confirm("dba", "dora"))
		r.state(saga.StateAwaitingConfirmation)
		if e := eff.Events[0]; e.Kind != events.KindConfirmed || e.Role != "dba" || e.Actor != "dora" || e.Reason != "waiting for dev" {
			t.Fatalf("event %+v", e)
		}
		// A redelivered confirmation changes nothing, and says why.
		eff = r.apply(confirm("dba", "dora"))
		if !strings.Contains(eff.Ignored, "role dba already confirmed by dora") {
			t.Fatalf("duplicate: %q", eff.Ignored)
		}
		if eff := r.apply(confirm("qa", "quinn")); !strings.Contains(eff.Ignored, `role "qa": this saga asks dev, dba to confirm`) {
			t.Fatalf("unknown role: %q", eff.Ignored)
		}
		r.must(confirm("dev", "dev-1"))
		r.state(saga.StateBackingUp)
		want := []saga.Confirmation{{Role: "dba", By: "dora", Comment: "on hand", At: t0.Add(time.Minute)},
			{Role: "dev", By: "dev-1", Comment: "on hand", At: t0.Add(time.Minute)}}
		if !slices.Equal(r.s.Confirmations, want) {
			t.Fatalf("confirmations %+v", r.s.Confirmations)
		}
		r.ignored(confirm("dev", "dev-2"))
	})
	t.Run("the deadline fails it naming who did not confirm", func(t *testing.T) {
		r := start(t, confirmRequest("dev", "qa", "ops", "dba"), saga.Options{})
		r.must(confirm("qa", "quinn")) // early: counts when the saga gets there
		r.answer(events.StatusSucceeded)
		r.state(saga.StateAwaitingConfirmation)
		r.must(confirm("ops", "otto"))
		r.ignored(saga.Input{Kind: saga.InputTick, At: t0.Add(4*time.Hour - time.Second)})
		r.must(saga.Input{Kind: saga.InputTick, At: t0.Add(4 * time.Hour)})
		r.state(saga.StateFailed)
		if r.s.Reason != "no confirmation within 4h0m0s from dev, dba; nothing was changed" {
			t.Fatalf("reason %q", r.s.Reason)
		}
		r.ignored(confirm("dev", "dev-1"))
	})
	t.Run("all confirmed early: no wait", func(t *testing.T) {
		r := start(t, confirmRequest("dba"), saga.Options{})
		r.must(confirm("dba", "dora"))
		r.answer(events.StatusSucceeded)
		r.state(saga.StateBackingUp)
	})
	t.Run("confirmations, then the approval, then the window", func(t *testing.T) {
		req := confirmRequest("dba")
		req.Spec.Windows = []spec.Window{{Start: "22:00", End: "23:00"}}
		r := start(t, req, saga.Options{RequireApproval: true, ApprovalTimeout: time.Hour})
		r.answer(events.StatusSucceeded)
		r.state(saga.StateAwaitingConfirmation)
		r.must(saga.Input{Kind: saga.InputApprove, Actor: "carol"}) // recorded, the saga stays
		r.state(saga.StateAwaitingConfirmation)
		r.must(confirm("dba", "dora"))
		r.state(saga.StateAwaitingWindow)
	})
	t.Run("approval waits after the confirmations", func(t *testing.T) {
		r := start(t, confirmRequest("dba"), saga.Options{RequireApproval: true, ApprovalTimeout: time.Hour})
		r.answer(events.StatusSucceeded)
		r.now = t0.Add(2 * time.Hour)
		r.must(confirm("dba", "dora"))
		r.state(saga.StateAwaitingApproval)
		if !r.s.Deadline.Equal(t0.Add(3 * time.Hour)) {
			t.Fatalf("approval deadline %v, want an hour after the last confirmation", r.s.Deadline)
		}
	})
	t.Run("reject while awaiting confirmation", func(t *testing.T) {
		r := start(t, confirmRequest("dba"), saga.Options{RequireApproval: true})
		r.answer(events.StatusSucceeded)
		r.state(saga.StateAwaitingConfirmation)
		r.must(saga.Input{Kind: saga.InputReject, Actor: "erin", Comment: "freeze"})
		r.state(saga.StateRejected)
		r.ignored(confirm("dba", "dora"))
	})
	t.Run("cancel while awaiting confirmation", func(t *testing.T) {
		r := start(t, confirmRequest("dba"), saga.Options{})
		r.answer(events.StatusSucceeded)
		r.must(saga.Input{Kind: saga.InputCancel, Actor: "ops"})
		r.state(saga.StateCancelled)
		if len(r.cmds) != 2 { // the prechecks only
			t.Fatalf("commands %v", names(r.cmds))
		}
	})
	t.Run("the environment's roles join the request's", func(t *testing.T) {
		opts := saga.Options{Confirm: spec.Confirm{Roles: []string{"ops", "dba"}, Timeout: spec.Duration{Duration: time.Hour}}}
		r := start(t, confirmRequest("dev", "dba"), opts)
		if got := strings.Join(r.s.Options.Confirm.Roles, " "); got != "ops dba dev" || r.s.Options.Confirm.Timeout.Duration != 4*time.Hour {
			t.Fatalf("roles %q timeout %s", got, r.s.Options.Confirm.Timeout)
		}
		r = start(t, request(spec.KindUpgrade, 1, "a"), saga.Options{Confirm: spec.Confirm{Roles: []string{"ops"}}})
		if r.s.Options.Confirm.Timeout.Duration != saga.DefaultConfirmTimeout {
			t.Fatalf("timeout %s", r.s.Options.Confirm.Timeout)
		}
		r.answer(events.StatusSucceeded)
		r.state(saga.StateAwaitingConfirmation)
	})
	t.Run("none asked", func(t *testing.T) {
		r := start(t, request(spec.KindUpgrade, 1, "a"), saga.Options{})
		if eff := r.apply(confirm("dba", "dora")); eff.Ignored != "this saga asks for no confirmation" {
			t.Fatalf("ignored %q", eff.Ignored)
		}
		r.answer(events.StatusSucceeded)
		r.state(saga.StateBackingUp)
	})
	t.Run("a dry run asks for none", func(t *testing.T) {
		req := confirmRequest("dba")
		req.Spec.DryRun = true
		r := start(t, req, saga.Options{})
		r.ignored(confirm("dba", "dora"))
		r.answer(events.StatusSucceeded)
		r.state(saga.StateChecked)
	})
	t.Run("a confirmation names its role and who", func(t *testing.T) {
		r := start(t, confirmRequest("dba"), saga.Options{})
		r.ignored(confirm("", "dora"))
		r.ignored(confirm("dba", " "))
	})
}

func TestAnnouncement(t *testing.T) {
	// t0 is Wednesday 12:00 UTC; the window is every day 22:00-23:00 UTC.
	nightly := []spec.Window{{Start: "22:00", End: "23:00"}}
	opens := time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC)
	announced := func(t *testing.T, r *run) []events.SagaEvent {
		t.Helper()
		var out []events.SagaEvent
		for _, e := range r.evts {
			if e.Kind == events.KindAnnouncement {
				out = append(out, e)
			}
		}
		return out
	}
	t.Run("a set time before the window opens, once", func(t *testing.T) {
		req := request(spec.KindUpgrade, 1, "a", "b", "c")
		req.Spec.Windows = nightly
		req.Spec.Announce = &spec.Announce{Before: spec.Duration{Duration: 2 * time.Hour}, Teams: []string{"sales"}}
		r := start(t, req, saga.Options{})
		r.report(r.last.Commands[0], events.StatusSucceeded)
		r.report(r.last.Commands[1], events.StatusSucceeded)
		eff := r.report(r.last.Commands[2], events.StatusSucceeded)
		r.state(saga.StateAwaitingWindow)
		if len(eff.Wake) != 2 || !eff.Wake[0].Equal(opens.Add(-2*time.Hour)) || !eff.Wake[1].Equal(opens) {
			t.Fatalf("wake %v", eff.Wake)
		}
		if len(announced(t, r)) != 0 {
			t.Fatal("announced before its time")
		}
		r.ignored(saga.Input{Kind: saga.InputTick, At: opens.Add(-2*time.Hour - time.Second)})
		r.must(saga.Input{Kind: saga.InputTick, At: opens.Add(-2 * time.Hour)})
		r.state(saga.StateAwaitingWindow)
		got := announced(t, r)
		if len(got) != 1 {
			t.Fatalf("%d announcements", len(got))
		}
		e := got[0]
		if e.Reason != "3 targets in test; the window opens 2026-11-25T22:00:00Z" || !slices.Equal(e.Audience, []string{"sales"}) ||
			!e.WindowStart.Equal(opens) || e.Software != "demo" || e.To != "1.1" {
			t.Fatalf("announcement %+v", e)
		}
		r.ignored(saga.Input{Kind: saga.InputTick, At: opens.Add(-time.Hour)})
		r.must(saga.Input{Kind: saga.InputTick, At: opens})
		r.state(saga.StateBackingUp)
		if len(announced(t, r)) != 1 {
			t.Fatal("announced twice")
		}
	})
	t.Run("at once without a window", func(t *testing.T) {
		req := confirmRequest("dba")
		req.Spec.Announce = &spec.Announce{Before: spec.Duration{Duration: 24 * time.Hour}, Teams: []string{"sales"}}
		r := start(t, req, saga.Options{Announce: spec.Announce{Teams: []string{"support", "sales"}}})
		r.answer(events.StatusSucceeded)
		r.state(saga.StateAwaitingConfirmation)
		got := announced(t, r)
		if len(got) != 1 || !strings.HasSuffix(got[0].Reason, "no window to wait for") ||
			!slices.Equal(got[0].Audience, []string{"support", "sales"}) || !got[0].WindowStart.IsZero() {
			t.Fatalf("announcements %+v", got)
		}
	})
	t.Run("at once when the time before the window has passed", func(t *testing.T) {
		req := request(spec.KindUpgrade, 1, "a")
		req.Spec.Windows = nightly
		req.Spec.Announce = &spec.Announce{Before: spec.Duration{Duration: 24 * time.Hour}, Teams: []string{"sales"}}
		r := start(t, req, saga.Options{})
		r.answer(events.StatusSucceeded)
		r.state(saga.StateAwaitingWindow)
		if got := announced(t, r); len(got) != 1 || !got[0].WindowStart.Equal(opens) {
			t.Fatalf("announcements %+v", got)
		}
	})
	t.Run("a late wake-up still announces before the backup", func(t *testing.T) {
		req := request(spec.KindUpgrade, 1, "a")
		req.Spec.Windows = nightly
		req.Spec.Announce = &spec.Announce{Before: spec.Duration{Duration: time.Hour}, Teams: []string{"sales"}}
		r := start(t, req, saga.Options{})
		r.answer(events.StatusSucceeded)
		eff := r.must(saga.Input{Kind: saga.InputTick, At: opens.Add(time.Minute)})
		r.state(saga.StateBackingUp)
		if kinds(eff.Events) != "announcement backing_up" {
			t.Fatalf("events %q", kinds(eff.Events))
		}
	})
	t.Run("not when the saga ends first", func(t *testing.T) {
		req := request(spec.KindUpgrade, 1, "a")
		req.Spec.Windows = nightly
		req.Spec.Announce = &spec.Announce{Before: spec.Duration{Duration: time.Hour}, Teams: []string{"sales"}}
		r := start(t, req, saga.Options{})
		r.answer(events.StatusSucceeded)
		r.must(saga.Input{Kind: saga.InputCancel, Actor: "ops"})
		r.ignored(saga.Input{Kind: saga.InputTick, At: opens.Add(-time.Hour)})
		if len(announced(t, r)) != 0 {
			t.Fatal("a cancelled saga announced")
		}
	})
}
