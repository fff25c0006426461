package kvstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// LeaseBucket holds the coordinators' lease: one key, its value the
// holder's name. The bucket's TTL is the lease's: a holder that stops
// renewing (a crash, a partition) loses the key when it expires.
const LeaseBucket = "upshift_leases"

const leaseKey = "coordinator"

// Lease is a sagastore.Lease over a key in LeaseBucket: taken by Create
// (which fails while another holder's key lives), renewed by Update at the
// revision it holds (which fails once anyone else wrote the key), every
// ttl/3.
type Lease struct {
	kv     jetstream.KeyValue
	holder string
	ttl    time.Duration

	mu  sync.Mutex
	rev uint64 // of the key while held, 0 otherwise
}

var _ sagastore.Lease = (*Lease)(nil)

// OpenLease provisions LeaseBucket with ttl and returns holder's lease.
// Every instance must use the same ttl: the bucket has one.
func OpenLease(ctx context.Context, js jetstream.JetStream, c streams.Config, holder string, ttl time.Duration) (*Lease, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("lease: ttl %v must be positive", ttl)
	}
	kv, err := streams.EnsureBucket(ctx, js, c, LeaseBucket, ttl)
	if err != nil {
		return nil, err
	}
	return &Lease{kv: kv, holder: holder, ttl: ttl}, nil
}

// Renew implements sagastore.Lease.
func (l *Lease) Renew() time.Duration { return l.ttl / 3 }

// Hold implements sagastore.Lease.
func (l *Lease) Hold(ctx context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev != 0 {
		rev, err := l.kv.Update(ctx, leaseKey, []byte(l.holder), l.rev)
		if err != nil {
			l.rev = 0
			return false, fmt.Errorf("renew lease: %w", err)
		}
		l.rev = rev
		return true, nil
	}
	rev, err := l.kv.Create(ctx, leaseKey, []byte(l.holder))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil // another holder's, still alive
	}
	if err != nil {
		return false, fmt.Errorf("take lease: %w", err)
	}
	l.rev = rev
	return true, nil
}

// Release implements sagastore.Lease: it deletes the key only at the
// revision it holds, never another holder's.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev == 0 {
		return nil
	}
	rev := l.rev
	l.rev = 0
	if err := l.kv.Delete(ctx, leaseKey, jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	return nil
}
