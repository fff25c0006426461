package bus_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/streams"
)

func TestEnsureIsIdempotent(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t) // provisions once
	ctx := context.Background()
	if err := streams.Ensure(ctx, js, streams.Config{}, streams.All...); err != nil {
		t.Fatalf("second provisioning: %v", err)
	}
	s, err := js.Stream(ctx, events.StreamCommands)
	if err != nil {
		t.Fatal(err)
	}
	if s.CachedInfo().Config.Retention != jetstream.WorkQueuePolicy {
		t.Fatal("COMMANDS is not a work queue")
	}
	if _, err := streams.Stream("NOPE", streams.Config{}); err == nil {
		t.Fatal("unknown stream accepted")
	}
}

func TestPublishDeduplicatesByEventID(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t)
	ctx := context.Background()
	env, _ := events.New("same-id", events.TypeSaga, "test", "s1", 1, time.Now(), events.SagaEvent{Saga: "s1", Kind: "k", State: "s"})
	for range 3 {
		if err := bus.Publish(ctx, js, events.SagaSubject("s1", "k"), env); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(natstest.Read(t, js, events.StreamEvents, "upshift.evt.>")); n != 1 {
		t.Fatalf("%d copies stored", n)
	}
}

func TestScheduleIsNeverEarly(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t)
	ctx := context.Background()
	due := time.Now().Add(1200 * time.Millisecond)
	env, _ := events.New("s1/timer/1", events.TypeTimer, "test", "s1", 0, time.Now(), events.Timer{Saga: "s1", Due: due, N: 1})
	m, err := bus.Schedule(events.TimerScheduleSubject("s1", 1), events.TimerFireSubject("s1"), due, env)
	if err != nil {
		t.Fatal(err)
	}
	if m.At.Before(due) || m.At.Sub(due) >= time.Second || m.At.Nanosecond() != 0 {
		t.Fatalf("scheduled at %v for %v", m.At, due)
	}
	if err := bus.Send(ctx, js, m); err != nil {
		t.Fatal(err)
	}
	c, err := js.OrderedConsumer(ctx, events.StreamTimers, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.TimerFireFilter()}})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if time.Now().Before(due) {
		t.Fatalf("delivered %v before it was due", time.Until(due))
	}
	got, err := events.Decode(msg.Data())
	if err != nil || got.ID != "s1/timer/1" {
		t.Fatalf("delivered %s: %v", msg.Data(), err)
	}
}

// SendAll stores a burst in order, drops what a stream already has, keeps
// a schedule a schedule, and says which message it could not send.
func TestSendAllKeepsOrderAndIDs(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t)
	ctx := context.Background()
	var msgs []bus.Message
	for i := range 50 {
		env, _ := events.New(fmt.Sprintf("e%d", i), events.TypeSaga, "test", "s1", 1, time.Now(), events.SagaEvent{Saga: "s1", Kind: "k", State: "s"})
		m, err := bus.Encode(events.SagaSubject("s1", fmt.Sprintf("k%02d", i)), env)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	due := time.Now().Add(time.Hour)
	tenv, _ := events.New("s1/timer/1", events.TypeTimer, "test", "s1", 0, time.Now(), events.Timer{Saga: "s1", Due: due, N: 1})
	timer, err := bus.Schedule(events.TimerScheduleSubject("s1", 1), events.TimerFireSubject("s1"), due, tenv)
	if err != nil {
		t.Fatal(err)
	}
	// Sent twice, the second time with the first half again in front: the
	// stream keeps one copy of each, in the first burst's order.
	if err := bus.SendAll(ctx, js, append(msgs[:25:25], timer)); err != nil {
		t.Fatal(err)
	}
	if err := bus.SendAll(ctx, js, msgs); err != nil {
		t.Fatal(err)
	}
	got := natstest.ReadMsgs(t, js, events.StreamEvents, "upshift.evt.>")
	if len(got) != len(msgs) {
		t.Fatalf("%d messages stored, want %d", len(got), len(msgs))
	}
	for i, m := range got {
		if m.Subject != msgs[i].Subject {
			t.Fatalf("message %d on %s, want %s", i, m.Subject, msgs[i].Subject)
		}
	}
	s, err := js.Stream(ctx, events.StreamTimers)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(ctx, timer.Subject)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Header.Get(jetstream.ScheduleHeader) == "" || raw.Header.Get(jetstream.ScheduleTargetHeader) != timer.Target {
		t.Fatalf("the timer lost its schedule: %v", raw.Header)
	}
	// A subject no stream takes: the error names the message.
	bad := bus.Message{ID: "lost", Subject: "nowhere.at.all", Data: []byte(`{}`)}
	if err := bus.SendAll(ctx, js, []bus.Message{msgs[0], bad, msgs[1]}); err == nil || !strings.Contains(err.Error(), "lost") {
		t.Fatalf("a message no stream takes: %v", err)
	}
}

// An ack that never comes does not hold SendAll: past bus.AckWait the
// message is sent again alone, and that publish fails in its own time.
// Not parallel: it sets bus.AckWait.
func TestSendAllDoesNotWaitForeverForAnAck(t *testing.T) {
	srv, js := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv)
	// Something answers the subject, so no "no responders", but never acks.
	if _, err := nc.Subscribe("silent.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	defer func(d time.Duration) { bus.AckWait = d }(bus.AckWait)
	bus.AckWait = 300 * time.Millisecond
	// A caller without a deadline, as a handler is: SendAll must give up by
	// itself (AckWait, then the client's own 5 s for the publish sent again).
	ctx := context.Background()
	m := func(id, subject string) bus.Message { return bus.Message{ID: id, Subject: subject, Data: []byte(`{}`)} }
	start := time.Now()
	err := bus.SendAll(ctx, js, []bus.Message{m("a", events.SagaSubject("s1", "a")), m("b", "silent.b"), m("c", events.SagaSubject("s1", "c"))})
	if err == nil || !strings.Contains(err.Error(), "silent.b") {
		t.Fatalf("a publish never acknowledged: %v", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("SendAll took %s", took)
	}
	// Published together, the message after it is stored too.
	if n := len(natstest.Read(t, js, events.StreamEvents, "upshift.evt.>")); n != 2 {
		t.Fatalf("%d messages stored around the one not acknowledged, want 2", n)
	}
}
