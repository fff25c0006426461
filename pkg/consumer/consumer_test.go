package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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
)

// fixture runs one runner over the EVENTS stream of a fresh server.
type fixture struct {
	t   *testing.T
	js  jetstream.JetStream
	reg *prometheus.Registry
	cfg consumer.Config
	// runner is the one run last.
	runner *consumer.Runner
}

func newFixture(t *testing.T) *fixture {
	_, js := natstest.Start(t)
	return fixtureOn(t, js)
}

func fixtureOn(t *testing.T, js jetstream.JetStream) *fixture {
	return &fixture{t: t, js: js, reg: prometheus.NewRegistry(), cfg: consumer.Config{
		Stream: events.StreamEvents, Name: "test", Filters: []string{"upshift.evt.>"},
		AckWait: 600 * time.Millisecond, MaxDeliver: 3, Heartbeat: time.Second,
		Backoff: []time.Duration{20 * time.Millisecond}, Grace: 5 * time.Second,
	}}
}

// run starts the runner and returns a function that stops it and waits.
func (f *fixture) run(h consumer.Handler, opts ...consumer.Option) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	opts = append(opts, consumer.WithMetrics(consumer.NewMetrics(f.reg)))
	r := consumer.New(f.js, f.cfg, h, testlog.New(f.t), opts...)
	f.runner = r
	if _, err := r.Ensure(ctx); err != nil {
		f.t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				f.t.Error(err)
			}
		})
	}
	f.t.Cleanup(stop)
	return stop
}

func (f *fixture) publish(id string) {
	env, err := events.New(id, events.TypeSaga, "test", "s1", 1, time.Now(), events.SagaEvent{Saga: "s1", Kind: "x", State: "y"})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := bus.Publish(context.Background(), f.js, events.SagaSubject("s1", "x"), env); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) publishRaw(data string) {
	if _, err := f.js.Publish(context.Background(), "upshift.evt.s1.saga.raw", []byte(data)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) deadLetters() []events.DeadLetter {
	return natstest.ReadEvents[events.DeadLetter](f.t, f.js, events.StreamDeadLetter, "upshift.dlq.>", events.TypeDeadLetter)
}

// count reads upshift_consumer_messages_total for one result.
func (f *fixture) count(result string) float64 {
	v, err := promreg.Value(f.reg, "upshift_consumer_messages_total", "result", result)
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

func TestAcksEachMessageOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var seen sync.Map
	var n atomic.Int32
	f.cfg.Concurrency = 4
	// Not a test of heartbeats: an ack wait no stall reaches.
	f.cfg.AckWait = natstest.Patience
	f.run(func(ctx context.Context, d *consumer.Delivery) error {
		if _, dup := seen.LoadOrStore(d.Event().ID, true); dup {
			t.Errorf("%s delivered twice", d.Event().ID)
		}
		n.Add(1)
		return nil
	})
	for i := range 50 {
		f.publish(fmt.Sprint("e", i))
	}
	f.publish("e0") // same id: dropped by the stream
	natstest.Eventually(t, natstest.Patience, "50 messages handled", func() bool { return f.count(consumer.ResultAcked) == 50 })
	// Every ack reached the server: nothing is pending, nothing came back.
	natstest.Eventually(t, natstest.Patience, "every ack registered", func() bool {
		c, err := f.js.Consumer(context.Background(), f.cfg.Stream, f.cfg.Name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumRedelivered != 0 {
			t.Fatalf("%d redelivered", info.NumRedelivered)
		}
		return info.NumAckPending == 0
	})
	if n.Load() != 50 {
		t.Fatalf("handled %d, want 50", n.Load())
	}
}

func TestRetriesAHandlerErrorThenSucceeds(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var calls atomic.Int32
	f.run(func(ctx context.Context, d *consumer.Delivery) error {
		if calls.Add(1) < 3 {
			return errors.New("database busy")
		}
		return nil
	})
	f.publish("e1")
	natstest.Eventually(t, natstest.Patience, "acked on the third delivery", func() bool { return f.count(consumer.ResultAcked) == 1 })
	if calls.Load() != 3 || f.count(consumer.ResultRetried) != 2 {
		t.Fatalf("calls %d, retried %v", calls.Load(), f.count(consumer.ResultRetried))
	}
}

func TestGivesUpAfterMaxDeliverAndDeadLetters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var calls, gaveUp atomic.Int32
	f.run(func(ctx context.Context, d *consumer.Delivery) error {
		calls.Add(1)
		return errors.New("disk on fire")
	}, consumer.WithGiveUp(func(ctx context.Context, d *consumer.Delivery, err error) {
		if d.Event().ID == "e1" && strings.Contains(err.Error(), "disk on fire") {
			gaveUp.Add(1)
		}
	}))
	f.publish("e1")
	natstest.Eventually(t, natstest.Patience, "given up", func() bool { return f.count(consumer.ResultGaveUp) == 1 })
	time.Sleep(3 * f.cfg.AckWait) // terminated: never delivered again
	if calls.Load() != 3 || gaveUp.Load() != 1 {
		t.Fatalf("calls %d, give-ups %d", calls.Load(), gaveUp.Load())
	}
	dls := f.deadLetters()
	if len(dls) != 1 || dls[0].Reason != "gave up" || dls[0].Deliveries != 3 || !strings.Contains(dls[0].Error, "disk on fire") {
		t.Fatalf("dead letters %+v", dls)
	}
	var env events.Envelope
	if err := json.Unmarshal(dls[0].Payload, &env); err != nil || env.ID != "e1" {
		t.Fatalf("payload %s: %v", dls[0].Payload, err)
	}
}

func TestTerminatesMalformedAndPermanentAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var calls atomic.Int32
	f.run(func(ctx context.Context, d *consumer.Delivery) error {
		calls.Add(1)
		if d.Event().ID == "perm" {
			return consumer.Permanent(errors.New("no such target"))
		}
		return fmt.Errorf("open data: %w", events.ErrMissingField)
	})
	f.publishRaw("{not json")
	f.publishRaw(`{"specversion":"1.0","id":"x","type":"t","source":"s","time":"2026-01-01T00:00:00Z","dataschema":"urn:upshift:schema:v2:t","data":{}}`)
	f.publish("perm")
	f.publish("bad-data")
	natstest.Eventually(t, natstest.Patience, "four terminated", func() bool { return f.count(consumer.ResultTermed) == 4 })
	if calls.Load() != 2 {
		t.Fatalf("handler called %d times, want 2 (undecodable ones never reach it)", calls.Load())
	}
	dls := f.deadLetters()
	if len(dls) != 4 {
		t.Fatalf("%d dead letters", len(dls))
	}
	for i, want := range []string{"malformed event", "unknown schema version: v2", "permanent failure: no such target", "missing field"} {
		if !strings.Contains(dls[i].Error, want) || dls[i].Deliveries != 1 {
			t.Errorf("dead letter %d: %+v, want error with %q", i, dls[i], want)
		}
	}
	if string(dls[0].Payload) != "{not json" {
		t.Errorf("payload %q", dls[0].Payload)
	}
}

func TestPanicIsRetriedNotACrash(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var calls atomic.Int32
	f.run(func(ctx context.Context, d *consumer.Delivery) error {
		if calls.Add(1) == 1 {
			panic("nil map")
		}
		return nil
	})
	f.publish("e1")
	natstest.Eventually(t, natstest.Patience, "acked after the panic", func() bool { return f.count(consumer.ResultAcked) == 1 })
}

func TestHeartbeatsKeepASlowHandlerFromRedelivery(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var calls atomic.Int32
	f.run(func(ctx context.Context, d *consumer.Delivery) error {
		calls.Add(1)
		time.Sleep(4 * f.cfg.AckWait)
		return nil
	})
	f.publish("slow")
	natstest.Eventually(t, natstest.Patience, "acked", func() bool { return f.count(consumer.ResultAcked) == 1 })
	if calls.Load() != 1 {
		t.Fatalf("delivered %d times while working", calls.Load())
	}
}

func TestShutdownLetsTheRunningHandlerFinish(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	started, finished := make(chan struct{}), make(chan struct{})
	stop := f.run(func(ctx context.Context, d *consumer.Delivery) error {
		close(started)
		time.Sleep(300 * time.Millisecond)
		if ctx.Err() != nil {
			t.Errorf("handler cancelled during the grace period: %v", ctx.Err())
		}
		close(finished)
		return nil
	})
	f.publish("e1")
	<-started
	stop()
	select {
	case <-finished:
	default:
		t.Fatal("Run returned before the handler finished")
	}
	if f.count(consumer.ResultAcked) != 1 {
		t.Fatal("the finished message was not acked")
	}
}
