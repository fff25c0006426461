package coordinator_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/kvstore"
	"github.com/upshift/upshift/services/coordinator/sagastore/pgstore"
	"github.com/upshift/upshift/services/coordinator/sagastore/storetest"
)

// killable is a lease whose holder can die: once killed it neither renews
// nor releases, as a process killed with SIGKILL would not.
type killable struct {
	sagastore.Lease
	dead atomic.Bool
}

var errDead = errors.New("holder killed")

func (k *killable) Hold(ctx context.Context) (bool, error) {
	if k.dead.Load() {
		return false, errDead
	}
	return k.Lease.Hold(ctx)
}

func (k *killable) Release(ctx context.Context) error {
	if k.dead.Load() {
		return nil
	}
	return k.Lease.Release(ctx)
}

// Two coordinators share a store; the one holding the lease is killed
// without releasing it (for KV it renews no more, for PostgreSQL its
// session ends). The other takes the lease over, within the lease's time,
// and relays the outbox the dead one left pending. Until then the other,
// not leading, relayed nothing.
func TestALeaderKilledIsTakenOverAndNoOutboxIsLeftUnsent(t *testing.T) {
	t.Parallel()
	const ttl = 3 * time.Second
	for _, tc := range []struct {
		name string
		// setup opens the store and returns how a coordinator gets its
		// lease, and how its holder's death looks to the backend.
		setup func(t *testing.T) (storeOpener, func(w *world, name string) sagastore.Lease, func())
	}{
		{"kv", func(t *testing.T) (storeOpener, func(*world, string) sagastore.Lease, func()) {
			return openKV, func(w *world, name string) sagastore.Lease {
				l, err := kvstore.OpenLease(context.Background(), w.js, streamsCfg, name, ttl)
				if err != nil {
					t.Fatal(err)
				}
				return l
			}, func() {} // its key expires
		}},
		{"postgres", func(t *testing.T) (storeOpener, func(*world, string) sagastore.Lease, func()) {
			url := pgtest.Database(t)
			return func(t testing.TB, _ jetstream.JetStream) opened { return openPostgresAt(t, url) },
				func(_ *world, name string) sagastore.Lease {
					l, err := pgstore.NewLease(url, ttl/3)
					if err != nil {
						t.Fatal(err)
					}
					return l
				}, func() { pgtest.KillAdvisoryHolder(t, url, pgstore.LeaseKey) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			open, newLease, die := tc.setup(t)
			w := newWorldOn(t, open, "a")
			var mu sync.Mutex
			leases := map[string]*killable{}
			w.lease = func(name string) sagastore.Lease {
				mu.Lock()
				defer mu.Unlock()
				leases[name] = &killable{Lease: newLease(w, name)}
				return leases[name]
			}
			// The first relays only once an hour: what is left pending is
			// left to the other.
			w.relay = time.Hour
			c1, stop1 := w.coordinator("c1")
			natstest.Eventually(t, natstest.Patience, "c1 to lead", c1.Leader)
			w.relay = 200 * time.Millisecond
			c2, _ := w.coordinator("c2")

			// A saga whose transition was stored and never published: its
			// coordinator died between the two.
			ctx := context.Background()
			id := uuid.NewString()
			s, _ := storetest.Saga(id, "platform", "test", "1.1", time.Now())
			env, err := events.New(id+"/left", events.TypeSaga, "test", id, 0, time.Now(), events.SagaEvent{Kind: "note"})
			if err != nil {
				t.Fatal(err)
			}
			m, err := bus.Encode(events.SagaSubject(id, "note"), env)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.store.Create(ctx, s, sagastore.Change{Outbox: []bus.Message{m}}); err != nil {
				t.Fatal(err)
			}
			// Ten of c2's relay intervals: a relay not behind the lease
			// would have sent it.
			time.Sleep(10 * 200 * time.Millisecond)
			if r, err := w.store.Load(ctx, id); err != nil || len(r.Pending) != 1 {
				t.Fatalf("pending %d (%v): an instance not leading relayed", len(r.Pending), err)
			}
			if c2.Leader() {
				t.Fatal("two leaders")
			}

			mu.Lock()
			leases["c1"].dead.Store(true)
			mu.Unlock()
			die()
			killed := time.Now()
			stop1()
			// Within the lease's time, and a renewal of c2's, on a machine
			// that may be loaded: twice that, and patience.
			natstest.Eventually(t, 2*(ttl+ttl/3)+natstest.Patience, "c2 to take the lease over", c2.Leader)
			t.Logf("c2 leads %v after c1 was killed (lease %v)", time.Since(killed).Round(time.Millisecond), ttl)
			w.drained(id)
			stream, err := w.js.Stream(ctx, events.StreamEvents)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := stream.GetLastMsgForSubject(ctx, events.SagaSubject(id, "note")); err != nil {
				t.Fatalf("the left-over message was not published: %v", err)
			}
			if v := w.metric("upshift_coordinator_leader"); v != 1 {
				t.Fatalf("upshift_coordinator_leader %v", v)
			}
		})
	}
}
