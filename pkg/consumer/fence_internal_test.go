package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/testlog"
)

// fenceOver is a fence over a stream of its own on a fresh server, holding
// n messages of subject f.a, and their sequences.
func fenceOver(t *testing.T, n int) (*fence, jetstream.Stream, []uint64) {
	t.Helper()
	_, js := natstest.Start(t)
	ctx := context.Background()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "F", Subjects: []string{"f.>"}})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for i := range n {
		ack, err := js.Publish(ctx, "f.a", []byte{byte('0' + i)})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	f := &fence{}
	f.use(s)
	return f, s, seqs
}

// A redelivery of a message still running here (its ack wait passed while
// a stream's leader changed, say) waits for the running copy to be settled:
// the two must never run at once, or a step is executed twice.
func TestARedeliveryWaitsForTheCopyRunningHere(t *testing.T) {
	ctx := context.Background()
	f, _, seqs := fenceOver(t, 1)
	log := testlog.New(t)
	release, err := f.wait(ctx, log, "f.a", seqs[0])
	if err != nil {
		t.Fatal(err)
	}
	// The first delivery runs; the second arrives.
	second := make(chan error, 1)
	go func() {
		rel, err := f.wait(ctx, log, "f.a", seqs[0])
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

// Two copies of one message held behind an earlier one; the first copy
// given up (its context cancelled): the second still goes once the earlier
// message is settled.
func TestACopyGivenUpLeavesTheOtherFree(t *testing.T) {
	ctx := context.Background()
	f, s, seqs := fenceOver(t, 2)
	a1, a2 := seqs[0], seqs[1]
	log := testlog.New(t)
	rel1, err := f.wait(ctx, log, "f.a", a1)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	first, second := make(chan error, 1), make(chan error, 1)
	go func() { _, err := f.wait(cctx, log, "f.a", a2); first <- err }()
	time.Sleep(50 * time.Millisecond)
	go func() {
		rel, err := f.wait(ctx, log, "f.a", a2)
		if err == nil {
			rel()
		}
		second <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-first; err == nil {
		t.Fatal("the cancelled copy went ahead")
	}
	select {
	case err := <-second:
		t.Fatalf("second copy went ahead of the earlier message: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := s.DeleteMsg(ctx, a1); err != nil {
		t.Fatal(err)
	}
	rel1()
	select {
	case err := <-second:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second copy still held: deadlock")
	}
	if len(f.held) != 0 {
		t.Fatalf("held: %v", f.held)
	}
}
