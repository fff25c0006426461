package consumer_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/streams"
)

func TestKeepsAMessageItCannotDeadLetter(t *testing.T) {
	t.Parallel()
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

// Heartbeats go on until a message is settled: a give-up callback (a phase
// service's failure report) slower than the ack wait does not let the
// server count the message as timed out on its last delivery.
func TestHeartbeatsLastUntilSettled(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
