package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// LeaseHarness makes leases on one fresh backend.
type LeaseHarness struct {
	// New returns holder's lease; every lease of a harness competes for
	// the same thing.
	New func(t testing.TB, holder string) sagastore.Lease
	// Kill makes a held lease's holder die as a crashed process does:
	// nothing is released, and the lease says nothing more.
	Kill func(t testing.TB, l sagastore.Lease)
	// TTL is how long a dead holder's lease may outlive it.
	TTL time.Duration
}

// RunLease runs the lease suite, each test in parallel with the others;
// open returns a fresh harness for each.
func RunLease(t *testing.T, open func(t testing.TB) LeaseHarness) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, LeaseHarness)
	}{
		{"OneHolderAtATime", testLeaseOneHolder},
		{"ADeadHoldersLeaseIsTakenOver", testLeaseDeadHolder},
		{"ConcurrentTakersOneWins", testLeaseConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

func hold(t *testing.T, l sagastore.Lease, name string, want bool) {
	t.Helper()
	got, err := l.Hold(context.Background())
	if got != want || (want && err != nil) {
		t.Fatalf("%s holds %v (%v), want %v", name, got, err, want)
	}
}

func testLeaseOneHolder(t *testing.T, h LeaseHarness) {
	a, b := h.New(t, "a"), h.New(t, "b")
	hold(t, a, "a", true)
	hold(t, b, "b", false)
	hold(t, a, "a renewing", true)
	hold(t, b, "b", false)
	if err := a.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	hold(t, b, "b after a released", true)
	hold(t, a, "a after b took it", false)
	hold(t, b, "b renewing", true)
	if a.Renew() <= 0 || a.Renew() > h.TTL {
		t.Fatalf("renew every %v with a ttl of %v", a.Renew(), h.TTL)
	}
}

func testLeaseDeadHolder(t *testing.T, h LeaseHarness) {
	a, b := h.New(t, "a"), h.New(t, "b")
	hold(t, a, "a", true)
	hold(t, b, "b", false)
	killed := time.Now()
	h.Kill(t, a)
	// Within the TTL and a renew of b's; twice that, and a second more,
	// for a loaded machine.
	within := 2*(h.TTL+b.Renew()) + time.Second
	for {
		got, err := b.Hold(context.Background())
		if got {
			break
		}
		if time.Since(killed) > within {
			t.Fatalf("b never took the lease of a dead holder within %v (last: %v)", within, err)
		}
		time.Sleep(b.Renew() / 4)
	}
	hold(t, a, "the dead holder", false)
	hold(t, b, "b renewing", true)
}

func testLeaseConcurrent(t *testing.T, h LeaseHarness) {
	const n = 6
	leases := make([]sagastore.Lease, n)
	for i := range leases {
		leases[i] = h.New(t, string(rune('a'+i)))
	}
	var wg sync.WaitGroup
	held := make([]bool, n)
	for i, l := range leases {
		wg.Go(func() { held[i], _ = l.Hold(context.Background()) })
	}
	wg.Wait()
	count := 0
	for _, got := range held {
		if got {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("%d of %d concurrent takers hold the lease: %v", count, n, held)
	}
}
