package notify_test

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/services/notify"
	"github.com/upshift/upshift/services/notify/notifytest"
)

func TestWebhookContract(t *testing.T) {
	notifytest.Run(t, func(t *testing.T) notifytest.Receiver {
		h := newHookReceiver(t, func(int) string { return "ok" })
		ch, err := notify.NewWebhook("ops-hook", h.srv.URL, h.secret, time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		return notifytest.Receiver{Channel: ch, Received: func(t *testing.T) []string {
			var ids []string
			for _, r := range h.accepted() {
				if !r.validSignature {
					t.Fatalf("a delivery with a bad signature: %+v", r)
				}
				ids = append(ids, noticeID(t, r.body))
			}
			return ids
		}}
	})
}

func TestSlackContract(t *testing.T) {
	notifytest.Run(t, func(t *testing.T) notifytest.Receiver {
		c := newChatReceiver(t)
		ch, err := notify.NewSlack("chat", c.srv.URL, time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		return notifytest.Receiver{Channel: ch, Received: func(t *testing.T) []string {
			var ids []string
			for _, m := range c.messages(t) {
				ids = append(ids, chatNoticeID(m))
			}
			return ids
		}}
	})
}

// chatNoticeID finds the notice id in a chat message's context block.
func chatNoticeID(m map[string]any) string {
	blocks, _ := m["blocks"].([]any)
	for _, b := range blocks {
		b, _ := b.(map[string]any)
		els, _ := b["elements"].([]any)
		for _, e := range els {
			e, _ := e.(map[string]any)
			if s, ok := e["text"].(string); ok && strings.HasPrefix(s, notify.NoticeMark) {
				return strings.TrimPrefix(s, notify.NoticeMark)
			}
		}
	}
	return ""
}

func TestEmailContract(t *testing.T) {
	notifytest.Run(t, func(t *testing.T) notifytest.Receiver {
		srv := newMailServer(t)
		ch := newEmail(t, srv)
		return notifytest.Receiver{Channel: ch, Received: func(t *testing.T) []string {
			var ids []string
			for _, m := range srv.received() {
				msg, err := mail.ReadMessage(bytes.NewReader(m.data))
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, msg.Header.Get(notify.HeaderNotice))
			}
			return ids
		}}
	})
}

func newEmail(t *testing.T, srv *mailServer) notify.Channel {
	ch, err := notify.NewEmail("billing-mail", notify.EmailConfig{Server: srv.addr, Username: srv.user, Password: srv.pass,
		From: "upshift@example.com", To: []string{"billing@example.com", "finance@example.com"}, RootCAs: srv.ca, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// A receiver that fails twice, then times out once, then accepts: one
// accepted delivery, validly signed, every try under one webhook-id.
func TestAWebhookIsRetriedUntilAcceptedOnce(t *testing.T) {
	t.Parallel()
	h := newHookReceiver(t, func(n int) string {
		switch n {
		case 1, 2:
			return "fail"
		case 3:
			return "hang"
		}
		return "ok"
	})
	ch, err := notify.NewWebhook("ops-hook", h.srv.URL, h.secret, 300*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := startWith(t, notify.Config{Channels: []notify.Channel{ch}, Consumer: consumerTries(5)})
	ev := sagaEvent()
	ev.Teams = []string{"billing"}
	r.publish(ev, "")
	natstest.Eventually(t, wait, "a delivery accepted", func() bool { return len(h.accepted()) == 1 })
	natstest.Eventually(t, wait, "the delivery counted", func() bool { return r.count("ops-hook", notify.ResultDelivered) == 1 })

	all := h.all()
	if len(all) != 4 {
		t.Fatalf("%d requests, want 4 (fail, fail, time-out, accepted)", len(all))
	}
	for i, req := range all {
		if !req.validSignature {
			t.Errorf("request %d: signature %q does not verify", i+1, req.signature)
		}
		if req.id != all[0].id || req.id == "" {
			t.Errorf("request %d: webhook-id %q, the first had %q", i+1, req.id, all[0].id)
		}
		if got := noticeID(t, req.body); got != events.SagaEventID("s1", 7, 0, "rolling_back")+"/billing" {
			t.Errorf("request %d: notice %q", i+1, got)
		}
	}
	var body notify.WebhookBody
	env, _ := events.Decode(h.accepted()[0].body)
	if err := events.Open(env, events.TypeNotice, &body); err != nil {
		t.Fatal(err)
	}
	if body.Team != "billing" || !strings.Contains(body.Text, "verify probe on web-2 failed: health 503") ||
		body.Command != "upshift status s1" || body.Next == "" {
		t.Errorf("body %+v", body)
	}
	if got := r.count("ops-hook", notify.ResultFailed); got != 3 {
		t.Errorf("%v failed tries counted, want 3", got)
	}
	// Nothing more comes: the notice is done.
	time.Sleep(200 * time.Millisecond)
	if n := len(h.all()); n != 4 {
		t.Errorf("%d requests after it was accepted", n)
	}
}

// A receiver that never accepts ends in a dead letter of its own, counted.
func TestAWebhookThatNeverSucceedsIsDeadLettered(t *testing.T) {
	t.Parallel()
	h := newHookReceiver(t, func(int) string { return "fail" })
	good := &recorder{name: "log"}
	ch, err := notify.NewWebhook("ops-hook", h.srv.URL, h.secret, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := startWith(t, notify.Config{Channels: []notify.Channel{good, ch}})
	ev := sagaEvent()
	ev.Teams = []string{"billing"}
	r.publish(ev, "")
	var dls []events.DeadLetter
	natstest.Eventually(t, wait, "a dead letter", func() bool { dls = r.deadLetters(); return len(dls) > 0 })
	natstest.Eventually(t, wait, "the dead letter counted", func() bool { return r.count("ops-hook", notify.ResultDeadLettered) == 1 })
	dl := dls[0]
	if len(dls) != 1 || dl.Channel != "ops-hook" || dl.Reason != "gave up" || dl.Deliveries != 3 ||
		!strings.Contains(dl.Error, "503") || dl.Subject != "upshift.notify.billing.s1.rolling_back" {
		t.Fatalf("dead letters %+v", dls)
	}
	if len(h.all()) != 3 || len(good.notices()) != 1 || r.count("log", notify.ResultDuplicate) != 2 {
		t.Fatalf("%d tries, %d to the good channel (%v duplicates)", len(h.all()), len(good.notices()), r.count("log", notify.ResultDuplicate))
	}
	if got := r.count("ops-hook", notify.ResultFailed); got != 3 {
		t.Errorf("%v failed tries counted, want 3", got)
	}
}

// A receiver that refuses a notice (4xx) is not asked again.
func TestAWebhookRefusalIsDeadLetteredAtOnce(t *testing.T) {
	t.Parallel()
	h := newHookReceiver(t, func(int) string { return "refuse" })
	ch, err := notify.NewWebhook("ops-hook", h.srv.URL, h.secret, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := startWith(t, notify.Config{Channels: []notify.Channel{ch}})
	ev := sagaEvent()
	ev.Teams = []string{"billing"}
	r.publish(ev, "")
	var dls []events.DeadLetter
	natstest.Eventually(t, wait, "a dead letter", func() bool { dls = r.deadLetters(); return len(dls) > 0 })
	if dls[0].Reason != "rejected" || dls[0].Deliveries != 1 || len(h.all()) != 1 {
		t.Fatalf("dead letter %+v after %d tries", dls[0], len(h.all()))
	}
}

func TestSlackGetsTheShortForm(t *testing.T) {
	t.Parallel()
	c := newChatReceiver(t)
	ch, err := notify.NewSlack("chat", c.srv.URL, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := notifytest.Notice(1)
	if err := ch.Deliver(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	m := c.messages(t)[0]
	text, _ := m["text"].(string)
	for _, want := range []string{"[CRITICAL] billing 1.0 -> 1.1: failed", "deploy apply on db-1 failed: boom",
		"nothing was deployed", "`upshift status saga-1`"} {
		if !strings.Contains(text, want) {
			t.Errorf("text %q lacks %q", text, want)
		}
	}
	if lines := strings.Count(text, "\n"); lines > 4 {
		t.Errorf("%d lines in chat: %q", lines+1, text)
	}
}

// A mail reaches a real SMTP server over STARTTLS with AUTH PLAIN, to every
// recipient, with a subject and the message as text and as HTML.
func TestEmailIsDeliveredWithBothBodies(t *testing.T) {
	t.Parallel()
	srv := newMailServer(t)
	ch := newEmail(t, srv)
	n := notifytest.Notice(1)
	n.Targets = []string{"db-1", "db-2"}
	n.Event.Environment = "production"
	n.Event.Reason = "deploy apply on db-1 failed: start hook exited 1: <no such table>"
	if err := ch.Deliver(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	mails := srv.received()
	if len(mails) != 1 {
		t.Fatalf("%d mails", len(mails))
	}
	m := mails[0]
	if !m.tls || m.from != "upshift@example.com" || !slices.Equal(m.to, []string{"billing@example.com", "finance@example.com"}) {
		t.Fatalf("mail tls %v from %s to %v", m.tls, m.from, m.to)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(m.data))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || subject != "[upshift] [CRITICAL] billing 1.0 -> 1.1 in production: failed" {
		t.Errorf("subject %q (%v)", subject, err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("content type %q %v", mt, err)
	}
	parts := map[string]string{}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts[ct] = string(b)
	}
	text, html := parts["text/plain"], parts["text/html"]
	for _, want := range []string{"billing 1.0 -> 1.1", "production", "db-1, db-2",
		"deploy apply on db-1 failed: start hook exited 1: <no such table>", "nothing was deployed", "upshift status saga-1"} {
		if !strings.Contains(text, want) {
			t.Errorf("text part lacks %q:\n%s", want, text)
		}
	}
	for _, want := range []string{"<h2>billing 1.0 -&gt; 1.1 in production: failed</h2>", "db-1, db-2",
		"start hook exited 1: &lt;no such table&gt;", "<code>upshift status saga-1</code>"} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML part lacks %q:\n%s", want, html)
		}
	}
}

// A server whose certificate does not verify never gets the password.
func TestEmailRefusesAServerItCannotVerify(t *testing.T) {
	t.Parallel()
	srv := newMailServer(t)
	ch, err := notify.NewEmail("m", notify.EmailConfig{Server: srv.addr, Username: srv.user, Password: srv.pass,
		From: "upshift@example.com", To: []string{"a@example.com"}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Without the test's CA the certificate does not verify.
	if err := ch.Deliver(context.Background(), notifytest.Notice(1)); err == nil || len(srv.received()) != 0 {
		t.Fatalf("err %v, %d mails", err, len(srv.received()))
	}
}
