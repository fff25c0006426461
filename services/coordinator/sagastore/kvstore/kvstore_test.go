package kvstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/kvstore"
	"github.com/upshift/upshift/services/coordinator/sagastore/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, harness)
}

func harness(t testing.TB) storetest.Harness {
	_, js := natstest.Start(t)
	s, err := kvstore.Open(context.Background(), js, streams.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return storetest.Harness{Store: s, JS: js}
}

func BenchmarkTransition(b *testing.B) {
	for _, n := range []int{1, 20} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) { storetest.BenchTransition(b, n, harness) })
	}
}

func TestHistoryLeavesNoConsumerBehind(t *testing.T) {
	h := harness(t)
	s, _ := storetest.Saga("s1", "payments", "test", "2.0", time.Now())
	if _, err := h.Store.Create(context.Background(), s, sagastore.Change{}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, err := h.Store.History(context.Background(), "s1"); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := h.JS.Stream(context.Background(), events.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Fatalf("%d consumers left on AUDIT after 20 reads", info.State.Consumers)
	}
}
