package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/services/notify"
)

const wait = natstest.Patience

func TestASagaEventReachesEachTeamOnce(t *testing.T) {
	t.Parallel()
	rec := &recorder{name: "test"}
	r := start(t, rec)
	// A team subscribes with plain NATS, no JetStream needed.
	nc := r.js.Conn()
	sub, err := nc.SubscribeSync("upshift.notify.billing.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	id := r.publish(sagaEvent(), "")
	natstest.Eventually(t, wait, "two notices delivered", func() bool { return len(rec.notices()) == 2 })

	ns := r.notices()
	if got := subjects(ns); got != "upshift.notify.billing.s1.rolling_back upshift.notify.dba.s1.rolling_back" {
		t.Fatalf("subjects %s", got)
	}
	for i, team := range []string{"billing", "dba"} {
		n := ns[i]
		if n.env.ID != id+"/"+team || n.env.Type != events.TypeNotice || n.env.Saga != "s1" {
			t.Errorf("envelope %+v", n.env)
		}
		if n.Team != team || n.Saga != "s1" || n.Kind != "rolling_back" || n.Severity != notify.SeverityWarning {
			t.Errorf("notice %+v", n.Notice)
		}
		if want := "billing 4.1 -> 4.2 (production, batch 1/2): rolling back: verify probe on web-2 failed: health 503"; n.Summary != want {
			t.Errorf("summary %q, want %q", n.Summary, want)
		}
		if n.Event.Seq != 7 || n.Event.Previous != "verifying" {
			t.Errorf("the notice lacks its saga event: %+v", n.Event)
		}
	}

	msg, err := sub.NextMsg(wait)
	if err != nil {
		t.Fatal(err)
	}
	env, err := events.Decode(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	var n events.Notice
	if err := events.Open(env, events.TypeNotice, &n); err != nil || n.Team != "billing" || msg.Subject != "upshift.notify.billing.s1.rolling_back" {
		t.Fatalf("subscriber got %s %+v, err %v", msg.Subject, n, err)
	}
}

func TestSeverityAndSummary(t *testing.T) {
	t.Parallel()
	base := func(saga, kind, state string) events.SagaEvent {
		return events.SagaEvent{Saga: saga, Kind: kind, State: state, Team: "ops", Teams: []string{"ops"},
			Environment: "production", Software: "billing", From: "4.1", To: "4.2", Batches: 2}
	}
	cases := []struct {
		name     string
		ev       events.SagaEvent
		severity string // "" when no notice is due
		summary  string
	}{
		{"precheck failed", func() events.SagaEvent {
			e := base("sa", "failed", "failed")
			e.Reason = "precheck check on web-1 failed: disk; nothing was changed"
			return e
		}(), notify.SeverityCritical, "billing 4.1 -> 4.2 (production): failed: precheck check on web-1 failed: disk; nothing was changed"},
		{"roll-back failed", func() events.SagaEvent {
			e := base("sb", "rollback_failed", "rollback_failed")
			e.Batch, e.Reason = 1, "deploy rollback on web-3 failed"
			return e
		}(), notify.SeverityCritical, "billing 4.1 -> 4.2 (production, batch 2/2): rollback failed: deploy rollback on web-3 failed"},
		{"awaiting approval", func() events.SagaEvent {
			e := base("sc", "awaiting_approval", "awaiting_approval")
			e.Reason = "approval required"
			return e
		}(), notify.SeverityAction, "billing 4.1 -> 4.2 (production): awaiting approval: approval required (upshift approve sc)"},
		{"approved", func() events.SagaEvent {
			e := base("sd", events.KindApproved, "awaiting_approval")
			e.Actor, e.Comment, e.Environment = "alice", "go ahead", ""
			return e
		}(), notify.SeverityInfo, "billing 4.1 -> 4.2: approved by alice: go ahead"},
		{"step failed", func() events.SagaEvent {
			e := base("se", events.KindStepFailed, "deploying")
			e.Step = &events.StepRef{ID: "x", Phase: events.Deploy, Action: events.ActionApply, Target: "web-1", Status: "failed"}
			e.Reason = "deploy apply on web-1 failed: start hook\nexited 1"
			return e
		}(), notify.SeverityWarning, "billing 4.1 -> 4.2 (production, batch 1/2): step failed: deploy apply on web-1 failed: start hook exited 1"},
		{"late result", func() events.SagaEvent {
			e := base("sf", events.KindIgnored, "rolled_back")
			e.Reason = "probe of web-1 reported succeeded after timing out"
			return e
		}(), notify.SeverityWarning, "billing 4.1 -> 4.2 (production, batch 1/2): late result: probe of web-1 reported succeeded after timing out"},
		{"state passed through in one transition", base("sg", "rolling_back", "rolled_back"),
			notify.SeverityWarning, "billing 4.1 -> 4.2 (production, batch 1/2): rolling back"},
		{"maintenance succeeded", func() events.SagaEvent {
			e := base("sh", "succeeded", "succeeded")
			e.To = ""
			return e
		}(), notify.SeverityInfo, "billing 4.1 (production): succeeded"},
		{"cancelled", base("si", "cancelled", "cancelled"), notify.SeverityWarning, "billing 4.1 -> 4.2 (production): cancelled"},
		{"dry run failed", func() events.SagaEvent {
			e := base("sk", "failed", "failed")
			e.DryRun, e.Reason = true, "precheck check on web-1 failed: free disk"
			return e
		}(), notify.SeverityWarning, "billing 4.1 -> 4.2 (production, dry run): failed: precheck check on web-1 failed: free disk"},
		{"dry run checked", func() events.SagaEvent {
			e := base("sl", "checked", "checked")
			e.DryRun, e.Reason = true, "every check passed; nothing was changed"
			return e
		}(), notify.SeverityInfo, "billing 4.1 -> 4.2 (production, dry run): checked: every check passed; nothing was changed"},
		{"prechecking, owner only", func() events.SagaEvent {
			e := base("sj", "prechecking", "prechecking")
			e.Teams = nil
			return e
		}(), notify.SeverityInfo, "billing 4.1 -> 4.2 (production): prechecking"},
	}
	rec := &recorder{name: "test"}
	r := start(t, rec)
	for _, tc := range cases {
		r.publish(tc.ev, "")
	}
	// Events are routed in order: once the last one is delivered, every
	// one before it has been dealt with.
	r.publish(base("zz", "succeeded", "succeeded"), "")
	natstest.Eventually(t, wait, "the last event delivered", func() bool { return rec.has("zz", "succeeded") })
	all := r.notices()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []notice
			for _, n := range all {
				if n.Saga == tc.ev.Saga {
					got = append(got, n)
				}
			}
			if tc.severity == "" {
				if len(got) != 0 {
					t.Fatalf("notices %s", subjects(got))
				}
				return
			}
			if len(got) != 1 || got[0].subject != events.NotifySubject("ops", tc.ev.Saga, tc.ev.Kind) {
				t.Fatalf("notices %s", subjects(got))
			}
			if got[0].Severity != tc.severity || got[0].Summary != tc.summary {
				t.Fatalf("severity %s, summary %q; want %s, %q", got[0].Severity, got[0].Summary, tc.severity, tc.summary)
			}
		})
	}
}

func TestARepublishedSagaEventYieldsNoSecondNotice(t *testing.T) {
	t.Parallel()
	rec := &recorder{name: "test"}
	r := start(t, rec)
	ev := sagaEvent()
	r.publish(ev, "first publish")
	r.publish(ev, "second publish") // same envelope id, new Nats-Msg-Id: the stream keeps both
	next := ev
	next.Seq, next.Kind, next.State = 8, "rolled_back", "rolled_back"
	r.publish(next, "")
	// Each team's notice is routed and delivered in turn: wait for the last.
	natstest.Eventually(t, natstest.Patience, "both teams told of the next event", func() bool { return len(rec.notices()) == 4 })

	if got := subjects(r.notices()); got != "upshift.notify.billing.s1.rolling_back upshift.notify.dba.s1.rolling_back "+
		"upshift.notify.billing.s1.rolled_back upshift.notify.dba.s1.rolled_back" {
		t.Fatalf("notices %s", got)
	}
	if n := len(rec.notices()); n != 4 {
		t.Fatalf("channel got %d notices, want 4", n)
	}
}

func TestMalformedMessagesAreDeadLetteredAndTheNextStillFlows(t *testing.T) {
	t.Parallel()
	rec := &recorder{name: "test"}
	r := start(t, rec)
	r.publishRaw("upshift.evt.s9.saga.failed", "{not json")
	cmd, _ := events.New("c1", events.TypeCommand, "x", "s9", 1, time.Now(), map[string]string{"step": "c1"})
	b, _ := events.Encode(cmd)
	r.publishRaw("upshift.evt.s9.saga.succeeded", string(b)) // an envelope of the wrong type
	r.publishRaw("upshift.notify.billing.s9.failed", `{"specversion":"1.0"}`)
	r.publish(sagaEvent(), "")
	natstest.Eventually(t, wait, "the good event delivered", func() bool { return len(rec.notices()) == 2 })

	var got []string
	natstest.Eventually(t, wait, "three dead letters", func() bool {
		got = nil
		for _, dl := range r.deadLetters() {
			got = append(got, fmt.Sprintf("%s/%s %s %s", dl.Stream, dl.Consumer, dl.Subject, dl.Reason))
		}
		return len(got) >= 3
	})
	sort.Strings(got)
	want := "EVENTS/notify-router upshift.evt.s9.saga.failed rejected, " +
		"EVENTS/notify-router upshift.evt.s9.saga.succeeded rejected, " +
		"NOTIFY/notify-deliver upshift.notify.billing.s9.failed rejected"
	if strings.Join(got, ", ") != want {
		t.Fatalf("dead letters:\n%s\nwant\n%s", strings.Join(got, ", "), want)
	}
}

func TestEachChannelGetsEachNoticeOnce(t *testing.T) {
	t.Parallel()
	// Names that a careless key sanitiser would map to one key.
	flaky := &recorder{name: "hook a.b", failFirst: 2}
	steady := &recorder{name: "hook a_b"}
	r := start(t, flaky, steady)
	ev := sagaEvent()
	ev.Teams = []string{"billing"}
	r.publish(ev, "")
	natstest.Eventually(t, wait, "the flaky channel delivered", func() bool { return len(flaky.notices()) == 1 })

	// The same notice again, as a redelivery after a lost ack would bring it.
	raw := natstest.Read(t, r.js, events.StreamNotify, "upshift.notify.>")
	if len(raw) != 1 {
		t.Fatalf("%d notices in NOTIFY, want 1", len(raw))
	}
	if _, err := r.js.Publish(context.Background(), events.NotifySubject("billing", "s1", "rolling_back"), raw[0],
		jetstream.WithMsgID("replayed")); err != nil {
		t.Fatal(err)
	}
	// Channels are looked at in turn: the replay is handled once the last has been.
	natstest.Eventually(t, natstest.Patience, "the replay handled", func() bool {
		return r.count(flaky.name, "duplicate") == 1 && r.count(steady.name, "duplicate") == 3
	})

	if len(flaky.notices()) != 1 || len(steady.notices()) != 1 {
		t.Fatalf("deliveries: flaky %d, steady %d; want one each", len(flaky.notices()), len(steady.notices()))
	}
	for _, c := range []struct {
		channel, result string
		want            float64
	}{
		{flaky.name, "failed", 2}, {flaky.name, "delivered", 1}, {flaky.name, "duplicate", 1},
		{steady.name, "failed", 0}, {steady.name, "delivered", 1}, {steady.name, "duplicate", 3},
	} {
		if got := r.count(c.channel, c.result); got != c.want {
			t.Errorf("upshift_notifications_total{channel=%q,result=%q} = %v, want %v", c.channel, c.result, got, c.want)
		}
	}
}

func TestAChannelThatKeepsFailingIsDeadLettered(t *testing.T) {
	t.Parallel()
	broken := &recorder{name: "broken", failFirst: 1000}
	r := start(t, broken)
	r.publish(sagaEvent(), "")
	var dls []events.DeadLetter
	natstest.Eventually(t, wait, "two notices dead-lettered", func() bool {
		dls = r.deadLetters()
		return len(dls) == 2
	})
	for _, dl := range dls {
		if dl.Consumer != notify.DeliverConsumer || dl.Reason != "gave up" || dl.Deliveries != 3 || !strings.Contains(dl.Error, "receiver down") {
			t.Errorf("dead letter %+v", dl)
		}
	}
	if got := r.count("broken", "failed"); got != 6 {
		t.Errorf("%v failures counted, want 6", got)
	}
}

func TestLogChannelWritesOneLinePerNotice(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	ch := notify.NewLogChannel(slog.New(slog.NewJSONHandler(&buf, nil)))
	n := events.Notice{Team: "dba", Saga: "s1", Kind: "failed", Severity: notify.SeverityCritical, Summary: "billing: failed"}
	if err := ch.Deliver(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	for k, want := range map[string]string{"level": "ERROR", "team": "dba", "saga": "s1", "kind": "failed",
		"severity": "critical", "summary": "billing: failed"} {
		if line[k] != want {
			t.Errorf("%s = %v, want %s", k, line[k], want)
		}
	}
	if ch.Name() != "log" {
		t.Errorf("name %q", ch.Name())
	}
}
