package notify_test

import (
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/services/notify"
)

// An announcement reaches the request's teams and the business teams it
// names, each once, as its own kind; the wait for confirmations asks for
// action and says how, and each confirmation says who confirmed what.
func TestAnnouncementAndConfirmationNotices(t *testing.T) {
	t.Parallel()
	rec := &recorder{name: "test"}
	r := start(t, rec)
	base := func(saga, kind, state string) events.SagaEvent {
		return events.SagaEvent{Saga: saga, Kind: kind, State: state, Team: "ops", Teams: []string{"ops"},
			Environment: "production", Software: "billing", From: "4.1", To: "4.2", Batches: 1}
	}
	ann := base("sa", events.KindAnnouncement, "awaiting_confirmation")
	ann.Audience = []string{"sales", "ops", "support"}
	ann.Reason = "3 targets in production; the window opens 2026-12-05T22:00:00Z"
	r.publish(ann, "")
	wait1 := base("sb", "awaiting_confirmation", "awaiting_confirmation")
	wait1.Reason = "waiting for dev, dba to confirm, until 2026-12-05T16:00:00Z"
	r.publish(wait1, "")
	conf := base("sc", events.KindConfirmed, "awaiting_confirmation")
	conf.Role, conf.Actor, conf.Comment, conf.Reason = "dba", "dora", "on call", "waiting for dev"
	r.publish(conf, "")
	natstest.Eventually(t, wait, "the confirmation delivered", func() bool { return rec.has("sc", events.KindConfirmed) })

	var got []notice
	for _, n := range r.notices() {
		if n.Saga == "sa" {
			got = append(got, n)
		}
	}
	if s := subjects(got); s != "upshift.notify.ops.sa.announcement upshift.notify.sales.sa.announcement upshift.notify.support.sa.announcement" {
		t.Fatalf("announcement notices %s", s)
	}
	if n := got[0]; n.Severity != notify.SeverityInfo ||
		n.Summary != "billing 4.1 -> 4.2 (production): announcement: 3 targets in production; the window opens 2026-12-05T22:00:00Z" {
		t.Fatalf("announcement %s %q", n.Severity, n.Summary)
	}
	for _, n := range r.notices() {
		switch n.Saga {
		case "sb":
			if n.Severity != notify.SeverityAction ||
				n.Summary != "billing 4.1 -> 4.2 (production): awaiting confirmation: waiting for dev, dba to confirm, until 2026-12-05T16:00:00Z (upshift confirm sb --role ROLE)" {
				t.Fatalf("awaiting confirmation %s %q", n.Severity, n.Summary)
			}
		case "sc":
			if n.Severity != notify.SeverityInfo || n.Summary != "billing 4.1 -> 4.2 (production): dba confirmed by dora: on call; waiting for dev" {
				t.Fatalf("confirmed %s %q", n.Severity, n.Summary)
			}
		}
	}
}
