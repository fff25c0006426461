package consumer_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/natstest"
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
