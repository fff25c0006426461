package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/pkg/testlog"
	"github.com/upshift/upshift/services/coordinator"
)

// A secret of the target, echoed by a hook and quoted in its error, is in
// no event on any stream (nor in any bucket, the saga store included), no
// notice, no log line and no saga read back through the API.
func TestNoSecretLeavesTheHost(t *testing.T) {
	endToEnd(t)
	const secret = "hunter2-Zq9-not-for-your-eyes"
	var logs testlog.Buffer
	r := newRigLogged(t, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), "", "1.0",
		coordinator.Policy{}, func(tg *targets.Target) {
			tg.Env = map[string]targets.Secret{"SECRET": secret}
			ctl := tg.Hooks.Start.Command[0]
			// 1.1 will not start: it prints the secret and fails with it.
			tg.Hooks.Start.Command = []string{"sh", "-c", `echo "connecting with token $SECRET"
if [ "$UPSHIFT_VERSION" = 1.1 ]; then echo "login refused for token $SECRET" >&2; exit 1; fi
exec "$0" start`, ctl}
		})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stack log:\n%s", logs.String())
		}
	})
	id, end := r.run(r.d.Request("1.0", "1.1"))
	if end.Kind != string(saga.StateRolledBack) {
		t.Fatalf("saga %s ended %s (%s), want rolled_back", id, end.Kind, end.Reason)
	}
	// The notify service has told the team by now, or will soon.
	natstest.Eventually(t, time.Minute, "the rolled_back notice", func() bool {
		return len(natstest.Read(t, r.s.JS, events.StreamNotify, "upshift.notify.*."+id+".rolled_back")) > 0
	})

	leaks := func(where string, b []byte) {
		t.Helper()
		if strings.Contains(string(b), secret) {
			t.Errorf("the secret is in %s: %.400s", where, b)
		}
	}
	// It was there to leak: the hook's output and error reached the report,
	// scrubbed.
	var redacted bool
	for _, res := range natstest.ReadEvents[events.StepResult](t, r.s.JS, events.StreamEvents, "upshift.evt."+id+".deploy.failed", events.TypeStep) {
		b, _ := json.Marshal(res)
		redacted = redacted || (strings.Contains(res.Error, "login refused for token "+targets.Redacted) &&
			strings.Contains(string(b), "connecting with token "+targets.Redacted))
	}
	if !redacted {
		t.Error("no deploy report quotes the hook's output and error, redacted")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	streams := r.s.JS.StreamNames(ctx)
	var names []string
	for name := range streams.Name() {
		names = append(names, name)
	}
	if err := streams.Err(); err != nil {
		t.Fatal(err)
	}
	if len(names) < 8 {
		t.Fatalf("streams %v", names)
	}
	for _, stream := range names {
		for _, m := range everyMsg(t, r.s.JS, stream) {
			leaks(stream+" "+m.Subject, m.Data)
			if stream == events.StreamDeadLetter {
				if env, err := events.Decode(m.Data); err == nil {
					var dl events.DeadLetter
					if events.Open(env, events.TypeDeadLetter, &dl) == nil {
						leaks("a dead letter's payload", dl.Payload)
					}
				}
			}
		}
	}
	v, err := r.s.Client.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	leaks("the saga", b)
	if !strings.Contains(string(b), targets.Redacted) {
		t.Error("the saga does not quote the scrubbed report")
	}
	hist, err := r.s.Client.History(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(hist)
	leaks("the saga's history", b)
	if logs.String() == "" || !strings.Contains(logs.String(), targets.Redacted) {
		t.Error("no log line quotes the scrubbed hook")
	}
	leaks("the logs", []byte(logs.String()))
}

// everyMsg reads every message a stream holds by sequence, which works on
// any stream, work queues and buckets included, and consumes nothing.
func everyMsg(t *testing.T, js jetstream.JetStream, name string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("%s #%d: %v", name, seq, err)
		}
		out = append(out, m)
	}
	return out
}
