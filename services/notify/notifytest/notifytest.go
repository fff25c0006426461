// Package notifytest is the contract suite of notify.Channel: Run checks
// what the notify service relies on from every channel (see
// notify.Channel), against a receiver the implementation sets up.
package notifytest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/services/notify"
)

// Receiver is one channel and what its receiver has got.
type Receiver struct {
	Channel notify.Channel
	// Received returns, for each delivery the receiver has got so far, in
	// order, the notice id it came with ("" if none).
	Received func(t *testing.T) []string
}

// Run runs the suite; newReceiver sets up a fresh receiver for each test.
func Run(t *testing.T, newReceiver func(t *testing.T) Receiver) {
	tests := []struct {
		name string
		fn   func(t *testing.T, r Receiver)
	}{
		{"a notice is delivered once with its id", testDelivered},
		{"a repeated notice is safe and can be told apart", testRepeated},
		{"a cancelled context is not a delivery", testCancelled},
		{"the name is set and stable", testName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newReceiver(t)) })
	}
}

// Notice returns a well-formed notice; n makes it distinct.
func Notice(n int) events.Notice {
	saga := fmt.Sprintf("saga-%d", n)
	ev := events.SagaEvent{Saga: saga, Kind: "failed", State: "failed", Seq: 3, Team: "dba", Teams: []string{"dba"},
		Software: "billing", From: "1.0", To: "1.1", Reason: "deploy apply on db-1 failed: boom"}
	return events.Notice{ID: events.SagaEventID(saga, 3, 0, "failed") + "/dba", Team: "dba", Saga: saga,
		Kind: "failed", Severity: notify.SeverityCritical, Summary: "billing 1.0 -> 1.1: failed", Event: ev}
}

// deliver calls Deliver, and waits for it at most Patience.
func deliver(t *testing.T, ctx context.Context, ch notify.Channel, n events.Notice) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- ch.Deliver(ctx, n) }()
	select {
	case err := <-done:
		return err
	case <-time.After(natstest.Patience):
		t.Fatalf("deliver %s did not return within %s", n.ID, natstest.Patience)
		return nil
	}
}

// until waits for the receiver to have got want deliveries.
func until(t *testing.T, r Receiver, want int) []string {
	t.Helper()
	var got []string
	natstest.Eventually(t, natstest.Patience, fmt.Sprintf("%d deliveries received", want), func() bool {
		got = r.Received(t)
		return len(got) >= want
	})
	return got
}

func testDelivered(t *testing.T, r Receiver) {
	a, b := Notice(1), Notice(2)
	for _, n := range []events.Notice{a, b} {
		if err := deliver(t, context.Background(), r.Channel, n); err != nil {
			t.Fatalf("deliver %s: %v", n.ID, err)
		}
	}
	if got := until(t, r, 2); !slices.Equal(got, []string{a.ID, b.ID}) {
		t.Fatalf("received ids %q, want %q", got, []string{a.ID, b.ID})
	}
}

// The service delivers a notice again after a crash between delivering and
// recording it: the receiver gets it twice, with one id to drop the repeat by.
func testRepeated(t *testing.T, r Receiver) {
	n := Notice(1)
	for i := range 2 {
		if err := deliver(t, context.Background(), r.Channel, n); err != nil {
			t.Fatalf("delivery %d of %s: %v", i+1, n.ID, err)
		}
	}
	other := Notice(2)
	if err := deliver(t, context.Background(), r.Channel, other); err != nil {
		t.Fatalf("deliver %s: %v", other.ID, err)
	}
	got := until(t, r, 3)
	if !slices.Equal(got, []string{n.ID, n.ID, other.ID}) {
		t.Fatalf("received ids %q, want %q twice then %q", got, n.ID, other.ID)
	}
}

// The service records a notice as sent when Deliver returns nil: with its
// context cancelled (shutting down), a channel that did not deliver must
// say so.
func testCancelled(t *testing.T, r Receiver) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := Notice(1)
	if err := deliver(t, ctx, r.Channel, n); err == nil {
		t.Fatalf("deliver %s with a cancelled context returned nil", n.ID)
	}
	// The channel still works with a live context.
	other := Notice(2)
	if err := deliver(t, context.Background(), r.Channel, other); err != nil {
		t.Fatalf("deliver %s: %v", other.ID, err)
	}
	if got := until(t, r, 1); got[len(got)-1] != other.ID {
		t.Fatalf("received ids %q, want %q last", got, other.ID)
	}
}

// Deliveries are recorded under the channel's name: a name that changed
// would deliver everything again.
func testName(t *testing.T, r Receiver) {
	name := r.Channel.Name()
	if name == "" {
		t.Fatal("empty channel name")
	}
	if again := r.Channel.Name(); again != name {
		t.Fatalf("name %q, then %q", name, again)
	}
}
