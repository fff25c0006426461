package notify_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/promreg"
	"github.com/upshift/upshift/pkg/testlog"
	"github.com/upshift/upshift/services/notify"
)

// recorder is a channel that records what it is given and fails the first
// failFirst calls.
type recorder struct {
	name      string
	failFirst int
	mu        sync.Mutex
	calls     int
	got       []events.Notice
}

func (r *recorder) Name() string { return r.name }

func (r *recorder) Deliver(_ context.Context, n events.Notice) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.calls <= r.failFirst {
		return fmt.Errorf("%s: receiver down (call %d)", r.name, r.calls)
	}
	r.got = append(r.got, n)
	return nil
}

func (r *recorder) notices() []events.Notice {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Notice(nil), r.got...)
}

// has reports whether a notice of saga and kind reached the channel.
func (r *recorder) has(saga, kind string) bool {
	for _, n := range r.notices() {
		if n.Saga == saga && n.Kind == kind {
			return true
		}
	}
	return false
}

type rig struct {
	t   *testing.T
	js  jetstream.JetStream
	reg *prometheus.Registry
}

// start runs a notify service with channels on a fresh server.
func start(t *testing.T, channels ...notify.Channel) *rig {
	return startWith(t, notify.Config{Channels: channels})
}

// startWith runs a notify service configured by cfg on a fresh server;
// what cfg leaves unset is fast: short back-offs, three deliveries.
func startWith(t *testing.T, cfg notify.Config) *rig {
	_, js := natstest.Start(t)
	reg := prometheus.NewRegistry()
	cfg.Instance = "notify@test"
	if cfg.Retry == (notify.Backoff{}) {
		cfg.Retry = notify.Backoff{Base: 10 * time.Millisecond, Max: 40 * time.Millisecond}
	}
	if cfg.Consumer.MaxDeliver == 0 {
		cfg.Consumer.MaxDeliver = 3
	}
	cfg.Consumer.AckWait, cfg.Consumer.Backoff = time.Second, []time.Duration{10 * time.Millisecond}
	svc := notify.New(js, cfg, testlog.New(t), reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	natstest.Eventually(t, natstest.Patience, "service ready", svc.Ready)
	return &rig{t: t, js: js, reg: reg}
}

// sagaEvent is a rolling-back event of saga s1 for billing and dba.
func sagaEvent() events.SagaEvent {
	return events.SagaEvent{Saga: "s1", Kind: "rolling_back", State: "rolling_back", Previous: "verifying", Seq: 7,
		Reason: "verify probe on web-2 failed: health 503", Team: "billing", Teams: []string{"billing", "dba", "billing"},
		Environment: "production", Software: "billing", From: "4.1", To: "4.2", Batch: 0, Batches: 2}
}

// publish sends a saga event under its deterministic id; msgID, when set,
// replaces the Nats-Msg-Id, as a second publisher or a replay would.
func (r *rig) publish(ev events.SagaEvent, msgID string) string {
	id := events.SagaEventID(ev.Saga, ev.Seq, 0, ev.Kind)
	env, err := events.New(id, events.TypeSaga, "upshift/coordinator", ev.Saga, 0, time.Now(), ev)
	if err != nil {
		r.t.Fatal(err)
	}
	m, err := bus.Encode(events.SagaSubject(ev.Saga, ev.Kind), env)
	if err != nil {
		r.t.Fatal(err)
	}
	if msgID != "" {
		m.ID = msgID
	}
	if err := bus.Send(context.Background(), r.js, m); err != nil {
		r.t.Fatal(err)
	}
	return id
}

func (r *rig) publishRaw(subject, data string) {
	if _, err := r.js.Publish(context.Background(), subject, []byte(data)); err != nil {
		r.t.Fatal(err)
	}
}

// notice is a notice as stored in NOTIFY.
type notice struct {
	subject string
	env     events.Envelope
	events.Notice
}

func (r *rig) notices() []notice {
	var out []notice
	for _, m := range natstest.ReadMsgs(r.t, r.js, events.StreamNotify, ">") {
		n := notice{subject: m.Subject}
		var err error
		if n.env, err = events.Decode(m.Data); err != nil {
			continue // a malformed message a test put there
		}
		if err := events.Open(n.env, events.TypeNotice, &n.Notice); err != nil {
			r.t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func (r *rig) deadLetters() []events.DeadLetter {
	return natstest.ReadEvents[events.DeadLetter](r.t, r.js, events.StreamDeadLetter, "upshift.dlq.>", events.TypeDeadLetter)
}

// count reads upshift_notifications_total for a channel and a result.
func (r *rig) count(channel, result string) float64 {
	v, err := promreg.Value(r.reg, "upshift_notifications_total", "channel", channel, "result", result)
	if err != nil {
		r.t.Fatal(err)
	}
	return v
}

func subjects(ns []notice) string {
	var out []string
	for _, n := range ns {
		out = append(out, n.subject)
	}
	return strings.Join(out, " ")
}

// consumerTries is a consumer configuration of n deliveries.
func consumerTries(n int) consumer.Config { return consumer.Config{MaxDeliver: n} }
