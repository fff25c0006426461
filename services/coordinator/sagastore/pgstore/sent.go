package pgstore

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// maxMarks bounds the Sent calls one statement marks.
const maxMarks = 256

// markTimeout bounds one marking statement: its callers stop waiting with
// their own contexts, the marker must not wait forever either.
const markTimeout = 30 * time.Second

var errClosed = errors.New("store closed")

// mark is one Sent call waiting for the marker.
type mark struct {
	saga string
	ids  []string
	done chan error
}

// marker writes the Sent marks of every flush in flight with one statement
// and one commit: the marks that arrive while a statement runs go in the
// next one. Each flush publishes, then marks; without it, every transition
// would cost two commits (its own and its mark's), each waiting for the
// log to reach the disk.
type marker struct {
	pool  *pgxpool.Pool
	marks chan mark
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newMarker(pool *pgxpool.Pool) *marker {
	m := &marker{pool: pool, marks: make(chan mark), stop: make(chan struct{}), done: make(chan struct{})}
	go m.run()
	return m
}

// Sent implements sagastore.Store. Marking a message twice keeps the first
// time it was marked.
func (s *Store) Sent(ctx context.Context, rec sagastore.Record, msgIDs []string) error {
	if len(msgIDs) == 0 {
		return nil
	}
	mk := mark{saga: rec.Saga.ID, ids: msgIDs, done: make(chan error, 1)}
	select {
	case s.marker.marks <- mk:
	case <-s.marker.done:
		return wrap(errClosed, "mark outbox of %s sent", mk.saga)
	case <-ctx.Done():
		return wrap(ctx.Err(), "mark outbox of %s sent", mk.saga)
	}
	select {
	case err := <-mk.done:
		return err
	case <-ctx.Done():
		return wrap(ctx.Err(), "mark outbox of %s sent", mk.saga)
	}
}

func (m *marker) run() {
	defer close(m.done)
	for {
		var batch []mark
		select {
		case <-m.stop:
			return
		case mk := <-m.marks:
			batch = append(batch, mk)
		}
	more:
		for len(batch) < maxMarks {
			select {
			case mk := <-m.marks:
				batch = append(batch, mk)
			default:
				break more
			}
		}
		m.write(batch)
	}
}

// write marks a batch's messages in one statement. Message ids are the
// outbox's key, unique across sagas.
func (m *marker) write(batch []mark) {
	var ids []string
	for _, mk := range batch {
		ids = append(ids, mk.ids...)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	ctx, cancel := context.WithTimeout(context.Background(), markTimeout)
	defer cancel()
	// Rows locked in id order (ORDER BY comes before FOR UPDATE), as a
	// transition that marks with its change locks them.
	_, err := m.pool.Exec(ctx, `UPDATE saga_outbox SET sent_at = now() WHERE id IN (SELECT id FROM saga_outbox
		WHERE id = ANY($1) AND sent_at IS NULL ORDER BY id FOR UPDATE)`, ids)
	for _, mk := range batch {
		if err != nil {
			mk.done <- wrap(err, "mark outbox of %s sent", mk.saga)
		} else {
			mk.done <- nil
		}
	}
}

// close stops the marker; a Sent called after it fails. Closing twice is
// closing once.
func (m *marker) close() {
	m.once.Do(func() { close(m.stop) })
	<-m.done
}
