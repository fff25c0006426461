package sagastore

import (
	"context"
	"time"
)

// Lease elects the one coordinator instance that does the background work
// (the relay of leftover outboxes, the sweep of overdue deadlines, the count
// behind the in-flight gauge): with many instances, each would otherwise
// read every active saga on every pass. Inputs are not leased: every
// instance handles its own and flushes its own transitions.
//
// kvstore leases with a key in a bucket with a TTL, pgstore with a
// session-level advisory lock; both pass storetest.RunLease.
type Lease interface {
	// Hold takes the lease if it is free, or renews it if this holder has
	// it, and reports whether this holder holds it now. An error means it
	// does not (a lease it held is lost). Call it every Renew.
	Hold(ctx context.Context) (bool, error)
	// Release gives up the lease, if held, so another instance takes it at
	// its next Hold rather than after the lease expires.
	Release(ctx context.Context) error
	// Renew is how often Hold must be called to keep the lease.
	Renew() time.Duration
}
