package consumer_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/streams"
)

// pending reads upshift_consumer_pending of the fixture's consumer, and
// whether it was ever set.
func (f *fixture) pending() (float64, bool) {
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "upshift_consumer_pending" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["stream"] == f.cfg.Stream && labels["consumer"] == f.cfg.Name {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// The pending gauge follows the consumer while no message arrives: here the
// stream is purged under it by the first handler, so that the last delivery
// leaves the gauge at 3 or 4 when nothing is pending any more.
func TestThePendingGaugeFollowsAnIdleConsumer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for i := range 5 {
		f.publish(fmt.Sprint("e", i))
	}
	var purged atomic.Bool
	f.run(func(ctx context.Context, d *consumer.Delivery) error {
		if !purged.CompareAndSwap(false, true) {
			return nil
		}
		s, err := f.js.Stream(ctx, f.cfg.Stream)
		if err != nil {
			return err
		}
		return s.Purge(ctx)
	})
	natstest.Eventually(t, natstest.Patience, "the first message acked", func() bool { return f.count(consumer.ResultAcked) >= 1 })
	natstest.Eventually(t, natstest.Patience, "the gauge at 0 after the purge", func() bool {
		v, set := f.pending()
		return set && v == 0
	})
}

// A runner is ready only while it consumes: not while its stream is gone and
// its consumer cannot be created again, and again once it can.
func TestReadyOnlyWhileTheConsumerIsConsumed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	stop := f.run(func(ctx context.Context, d *consumer.Delivery) error { return nil })
	natstest.Eventually(t, natstest.Patience, "ready", f.runner.Ready)
	f.publish("before")
	natstest.Eventually(t, natstest.Patience, "first acked", func() bool { return f.count(consumer.ResultAcked) == 1 })

	if err := f.js.DeleteStream(ctx, f.cfg.Stream); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, natstest.Patience, "not ready while the stream is gone", func() bool { return !f.runner.Ready() })
	if err := streams.Ensure(ctx, f.js, streams.Config{}, f.cfg.Stream); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, natstest.Patience, "ready again with the stream back", f.runner.Ready)
	f.publish("after")
	natstest.Eventually(t, natstest.Patience, "consumed again", func() bool { return f.count(consumer.ResultAcked) == 2 })

	stop()
	if f.runner.Ready() {
		t.Fatal("ready after Run returned")
	}
}
