package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natsembed"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/promreg"
	"github.com/upshift/upshift/pkg/streams"
)

var log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

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
	r := consumer.New(f.js, f.cfg, h, log, opts...)
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

func TestKeepsAMessageItCannotDeadLetter(t *testing.T) {
	f := newFixture(t)
	if err := f.js.DeleteStream(context.Background(), events.StreamDeadLetter); err != nil {
		t.Fatal(err)
	}
	f.cfg.Backoff = []time.Duration{50 * time.Millisecond}
	f.run(func(ctx context.Context, d *consumer.Delivery) error { return consumer.Permanent(errors.New("bad")) })
	f.publish("e1")
	natstest.Eventually(t, natstest.Patience, "kept for later", func() bool { return f.count(consumer.ResultRetried) >= 1 })
	if f.count(consumer.ResultTermed) != 0 {
		t.Fatal("terminated a message that was never dead-lettered")
	}
}

func TestSinceSkipsOldHistoryOnlyWhenCreated(t *testing.T) {
	f := newFixture(t)
	f.publish("old")
	time.Sleep(1100 * time.Millisecond)
	f.publish("recent")
	f.cfg.Since = time.Second
	var mu sync.Mutex
	var seen []string
	record := func(ctx context.Context, d *consumer.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, d.Event().ID)
		return nil
	}
	stop := f.run(record)
	natstest.Eventually(t, natstest.Patience, "recent handled", func() bool { return f.count(consumer.ResultAcked) == 1 })
	stop()
	// Restarted later, the consumer resumes where it was: nothing is skipped.
	time.Sleep(1100 * time.Millisecond)
	f.publish("later")
	f.reg = prometheus.NewRegistry()
	f.run(record)
	natstest.Eventually(t, natstest.Patience, "later handled", func() bool { return f.count(consumer.ResultAcked) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, " ") != "recent later" {
		t.Fatalf("handled %v", seen)
	}
}

func TestADeletedConsumerIsCreatedAgain(t *testing.T) {
	f := newFixture(t)
	f.run(func(ctx context.Context, d *consumer.Delivery) error { return nil })
	f.publish("before")
	natstest.Eventually(t, natstest.Patience, "first acked", func() bool { return f.count(consumer.ResultAcked) == 1 })
	if err := f.js.DeleteConsumer(context.Background(), f.cfg.Stream, f.cfg.Name); err != nil {
		t.Fatal(err)
	}
	f.publish("after")
	natstest.Eventually(t, natstest.Patience, "consumed after the consumer was deleted", func() bool {
		return f.count(consumer.ResultAcked) >= 2
	})
}

// A consumer that vanishes while no pull waits on it is never announced:
// here the server restarts without it, as after a restore of its storage
// that predates the consumer. The runner notices the silence and creates it
// again.
func TestAConsumerLostSilentlyIsCreatedAgain(t *testing.T) {
	dir := t.TempDir()
	srv, err := natsembed.Start(natsembed.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	port := srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() { srv.Stop() })
	nc, err := nats.Connect(srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if err := streams.Ensure(context.Background(), js, streams.Config{}, streams.All...); err != nil {
		t.Fatal(err)
	}
	f := fixtureOn(t, js)
	f.run(func(ctx context.Context, d *consumer.Delivery) error { return nil })
	f.publish("before")
	natstest.Eventually(t, natstest.Patience, "first acked", func() bool { return f.count(consumer.ResultAcked) == 1 })

	srv.Stop()
	obs := filepath.Join(dir, "jetstream", "$G", "streams", f.cfg.Stream, "obs", f.cfg.Name)
	if _, err := os.Stat(obs); err != nil {
		t.Fatalf("the consumer's storage is not where the test expects it: %v", err)
	}
	if err := os.RemoveAll(obs); err != nil {
		t.Fatal(err)
	}
	srv, err = natsembed.Start(natsembed.Options{Dir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, natstest.Patience, "reconnected", nc.IsConnected)
	if _, err := js.Consumer(context.Background(), f.cfg.Stream, f.cfg.Name); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("the consumer survived the restart: %v", err)
	}
	f.publish("after")
	natstest.Eventually(t, natstest.Patience, "consumed after the consumer was lost", func() bool {
		return f.count(consumer.ResultAcked) >= 2
	})
}

// Heartbeats go on until a message is settled: a give-up callback (a phase
// service's failure report) slower than the ack wait does not let the
// server count the message as timed out on its last delivery.
func TestHeartbeatsLastUntilSettled(t *testing.T) {
	srv, js := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv)
	var maxed atomic.Int32
	if _, err := nc.Subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>", func(*nats.Msg) { maxed.Add(1) }); err != nil {
		t.Fatal(err)
	}
	f := fixtureOn(t, js)
	f.run(func(ctx context.Context, d *consumer.Delivery) error {
		return errors.New("disk on fire")
	}, consumer.WithGiveUp(func(ctx context.Context, d *consumer.Delivery, err error) {
		time.Sleep(3 * f.cfg.AckWait)
	}))
	f.publish("e1")
	natstest.Eventually(t, natstest.Patience, "given up", func() bool { return f.count(consumer.ResultGaveUp) == 1 })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(f.cfg.AckWait) // an advisory on its way
	if n := maxed.Load(); n != 0 {
		t.Fatalf("%d max-deliveries advisories: the message timed out while it was being given up", n)
	}
}

// A message whose dead letter cannot be published on its last delivery is
// not given back to a server that will never deliver it again: the runner
// keeps trying until the dead letter is out.
func TestLastDeliveryIsDeadLetteredOnceTheStreamIsBack(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.js.DeleteStream(ctx, events.StreamDeadLetter); err != nil {
		t.Fatal(err)
	}
	f.cfg.Backoff = []time.Duration{20 * time.Millisecond, 200 * time.Millisecond}
	var calls atomic.Int32
	f.run(func(ctx context.Context, d *consumer.Delivery) error {
		calls.Add(1)
		return errors.New("store down")
	})
	f.publish("e1")
	natstest.Eventually(t, natstest.Patience, "the last delivery handled", func() bool { return calls.Load() == int32(f.cfg.MaxDeliver) })
	time.Sleep(3 * f.cfg.AckWait) // longer than the server would hold it without heartbeats
	if err := streams.Ensure(ctx, f.js, streams.Config{}, events.StreamDeadLetter); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, natstest.Patience, "given up", func() bool { return f.count(consumer.ResultGaveUp) == 1 })
	dls := f.deadLetters()
	if len(dls) != 1 || dls[0].Reason != "gave up" || dls[0].Deliveries != uint64(f.cfg.MaxDeliver) {
		t.Fatalf("dead letters %+v", dls)
	}
	if calls.Load() != int32(f.cfg.MaxDeliver) {
		t.Fatalf("handler called %d times", calls.Load())
	}
}

// A message waiting for a free handler is kept too: with every handler busy
// for longer than the ack wait, the next message is still delivered once.
func TestAMessageWaitingForAHandlerIsNotRedelivered(t *testing.T) {
	f := newFixture(t)
	f.cfg.Concurrency = 2
	var mu sync.Mutex
	seen := map[string]int{}
	f.run(func(ctx context.Context, d *consumer.Delivery) error {
		mu.Lock()
		seen[d.Event().ID]++
		mu.Unlock()
		time.Sleep(4 * f.cfg.AckWait)
		return nil
	})
	for _, id := range []string{"e1", "e2", "e3"} {
		f.publish(id)
	}
	natstest.Eventually(t, natstest.Patience, "three acked", func() bool { return f.count(consumer.ResultAcked) == 3 })
	mu.Lock()
	defer mu.Unlock()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s handled %d times", id, n)
		}
	}
}

// A message whose last delivery is cut off (here by a shutdown past the
// grace period; a killed process is the same to the server) is never
// delivered again, and its handler could not dead-letter it. The server's
// advisory, kept by the ADVISORIES stream while no runner is up, has the
// next runner dead-letter it, once.
func TestALastDeliveryNeverSettledIsDeadLetteredAsLost(t *testing.T) {
	f := newFixture(t)
	f.cfg.MaxDeliver, f.cfg.Grace = 1, 100*time.Millisecond
	taken := make(chan struct{}, 1)
	stop := f.run(func(ctx context.Context, d *consumer.Delivery) error {
		taken <- struct{}{}
		<-ctx.Done() // cancelled past the grace period
		return ctx.Err()
	})
	f.publish("e1")
	select {
	case <-taken:
	case <-time.After(natstest.Patience):
		t.Fatal("never delivered")
	}
	stop()
	if dls := f.deadLetters(); len(dls) != 0 {
		t.Fatalf("dead-lettered on the way out: %+v", dls)
	}

	var handled atomic.Int32
	f.run(func(ctx context.Context, d *consumer.Delivery) error { handled.Add(1); return nil })
	var dls []events.DeadLetter
	natstest.Eventually(t, natstest.Patience, "the lost message dead-lettered", func() bool {
		dls = f.deadLetters()
		return len(dls) > 0 && f.count(consumer.ResultLost) == 1
	})
	time.Sleep(3 * f.cfg.AckWait) // a second advisory or dead letter would be on its way
	dls = f.deadLetters()
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1: %+v", len(dls), dls)
	}
	dl := dls[0]
	env, err := events.Decode(dl.Payload)
	if dl.Reason != consumer.ReasonLost || dl.Consumer != f.cfg.Name || dl.Stream != events.StreamEvents ||
		dl.Subject != events.SagaSubject("s1", "x") || dl.Deliveries != 1 || err != nil || env.ID != "e1" {
		t.Fatalf("dead letter %+v (payload: %v)", dl, err)
	}
	if n := handled.Load(); n != 0 {
		t.Fatalf("delivered %d more times past MaxDeliver", n)
	}
	if n := f.count(consumer.ResultLost); n != 1 {
		t.Fatalf("%v lost counted, want 1", n)
	}
	// Acted on, the advisory is gone: a follower created again would not
	// dead-letter the message a second time.
	adv, err := f.js.Stream(context.Background(), events.StreamAdvisories)
	if err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, natstest.Patience, "the advisory removed", func() bool {
		info, err := adv.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	})
}
