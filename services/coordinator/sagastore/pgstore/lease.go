package pgstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// LeaseKey is the advisory lock's key: any constant no other user of the
// database takes (goose's migration lock is another).
const LeaseKey int64 = 0x7570736869667401 // "upshift" and 1

// Lease is a sagastore.Lease over a session-level advisory lock on a
// connection of its own, outside the pool: held as long as that connection
// lives, released by PostgreSQL when it dies. Hold checks the connection
// every renew; a failed check closes it and the lease is lost.
type Lease struct {
	url   string
	renew time.Duration

	mu   sync.Mutex
	conn *pgx.Conn // holding the lock, nil otherwise
}

var _ sagastore.Lease = (*Lease)(nil)

// NewLease returns the lease on the database at databaseURL; renew is how
// often Hold checks the connection (and how soon a free lock is taken).
func NewLease(databaseURL string, renew time.Duration) (*Lease, error) {
	if renew <= 0 {
		return nil, fmt.Errorf("lease: renew interval %v must be positive", renew)
	}
	if _, err := pgx.ParseConfig(databaseURL); err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	return &Lease{url: databaseURL, renew: renew}, nil
}

// Renew implements sagastore.Lease.
func (l *Lease) Renew() time.Duration { return l.renew }

// Hold implements sagastore.Lease.
func (l *Lease) Hold(ctx context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		// The lock lives with the session: a session that answers still
		// holds it.
		if _, err := l.conn.Exec(ctx, "SELECT 1"); err != nil {
			l.drop()
			return false, fmt.Errorf("renew lease: %w", err)
		}
		return true, nil
	}
	conn, err := pgx.Connect(ctx, l.url)
	if err != nil {
		return false, fmt.Errorf("take lease: %w", err)
	}
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", LeaseKey).Scan(&got); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return false, fmt.Errorf("take lease: %w", err)
	}
	if !got {
		_ = conn.Close(context.WithoutCancel(ctx))
		return false, nil
	}
	l.conn = conn
	return true, nil
}

func (l *Lease) drop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.conn.Close(ctx)
	l.conn = nil
}

// Release implements sagastore.Lease: closing the session frees the lock.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil
	}
	_, err := l.conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", LeaseKey)
	l.drop()
	if err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	return nil
}
