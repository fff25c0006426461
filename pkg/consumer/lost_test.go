package consumer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
)

// A message whose last delivery is cut off (here by a shutdown past the
// grace period; a killed process is the same to the server) is never
// delivered again, and its handler could not dead-letter it. The server's
// advisory, kept by the ADVISORIES stream while no runner is up, has the
// next runner dead-letter it, once.
func TestALastDeliveryNeverSettledIsDeadLetteredAsLost(t *testing.T) {
	t.Parallel()
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
