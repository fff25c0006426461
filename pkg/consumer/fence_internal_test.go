package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/testlog"
)

// A redelivery of a message still running here (its ack wait passed while
// a stream's leader changed, say) waits for the running copy to be settled:
// the two must never run at once, or a step is executed twice.
func TestARedeliveryWaitsForTheCopyRunningHere(t *testing.T) {
	_, js := natstest.Start(t)
	ctx := context.Background()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "F", Subjects: []string{"f.>"}})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(ctx, "f.a", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	var f fence
	f.use(s)
	log := testlog.New(t)
	release, err := f.wait(ctx, log, "f.a", ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	// The first delivery runs; the second arrives.
	second := make(chan error, 1)
	go func() {
		rel, err := f.wait(ctx, log, "f.a", ack.Sequence)
		if err == nil {
			rel()
		}
		second <- err
	}()
	select {
	case err := <-second:
		t.Fatalf("the second delivery went ahead while the first ran (err %v)", err)
	case <-time.After(500 * time.Millisecond):
	}
	release()
	select {
	case err := <-second:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second delivery still held after the first was settled")
	}
	if len(f.held) != 0 {
		t.Fatalf("held after both settled: %v", f.held)
	}
}
