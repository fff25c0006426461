// Package pgstore keeps sagas in PostgreSQL: the production store, for
// fleets and for operators who want to ask SQL questions.
//
// Four tables, created by the migrations embedded in the binary and applied
// at Open with goose (under a PostgreSQL advisory lock, so coordinators
// starting together migrate once; versions in saga_schema_version):
//
//   - sagas: one row per saga. doc (jsonb) is the saga less its parts that
//     grow with its targets, and with them the source of truth: spread
//     (jsonb) holds its targets and batches, written once, at creation;
//     plan (jsonb) its roll-back plan, written when it changes; its steps
//     are in saga_steps. A transition thus writes what it changed, not the
//     fleet. revision is the compare-and-set counter; state, kind, team,
//     environment, software, from_version, to_version, digest, name, reason,
//     batch, batches, created_at and updated_at are copies for filtering and
//     indexing, rewritten with doc. A partial index (sagas_active_idx)
//     holds the sagas not ended: the in-flight count and the listings of
//     active sagas read it, not the rows of every saga ever run.
//   - saga_steps: one row per saga step (keyed by saga and step id, with
//     its position in the saga): doc (jsonb) is the step as the saga has
//     it, read back in position order; the other columns are copies, to
//     query steps with SQL. Only a step new or changed is written.
//   - saga_audit: the append-only audit log, in position order. An entry id
//     is unique: writing it twice keeps the first. It has no foreign key on
//     sagas, so the log outlives whatever is done to a saga row. event is
//     json, not jsonb: the CloudEvent is kept byte for byte as it was seen
//     or sent (jsonb would re-space and re-order it), still checked to be
//     JSON.
//   - saga_outbox: the transactional outbox, keyed by message id (the
//     Nats-Msg-Id), in position order; sent_at is set when the relay has
//     published a message. Unsent rows have a partial index.
//
// Create and Update write the saga, its steps, audit entries and outbox
// messages in one transaction: all of it or none of it. Update is a
// compare-and-set on revision, so concurrent coordinators never lose a
// transition.
//
// Timestamps in columns are to the microsecond; the saga in doc keeps
// nanoseconds. Sent outbox rows and ended sagas are kept.
package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/upshift/upshift/services/coordinator/sagastore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrDuplicateMessage reports an outbox message whose id is already taken
// by a different message: JetStream would drop the second as a duplicate,
// so it is refused here instead of being lost.
var ErrDuplicateMessage = errors.New("outbox message id taken by another message")

// Store is a sagastore.Store over PostgreSQL.
type Store struct {
	pool   *pgxpool.Pool
	marker *marker
}

var _ sagastore.Store = (*Store)(nil)

// Ping checks that the database answers, for a readiness probe.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return nil
}

// Option configures Open.
type Option func(*options)

type options struct {
	log *slog.Logger
}

// WithLogger logs the migrations Open applies.
func WithLogger(log *slog.Logger) Option {
	return func(o *options) { o.log = log }
}

// Open connects to the database and brings its schema up to date.
func Open(ctx context.Context, databaseURL string, opts ...Option) (*Store, error) {
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("open saga store: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open saga store: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open saga store: %w", err)
	}
	if err := migrate(ctx, pool, o.log); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool, marker: newMarker(pool)}, nil
}

// Close closes the connections.
func (s *Store) Close() {
	s.marker.close()
	s.pool.Close()
}

// migrate applies the embedded migrations. The session lock is an advisory
// lock held on the migrating connection: a coordinator that starts while
// another migrates waits for it, then finds nothing left to do.
func migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate saga store: %w", err)
	}
	// Retry every second for five minutes: long enough for any migration
	// another coordinator is running.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return fmt.Errorf("migrate saga store: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool) // closing it leaves the pool open
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, dir,
		goose.WithSessionLocker(locker), goose.WithTableName("saga_schema_version"),
		goose.WithDisableGlobalRegistry(true), goose.WithSlog(log))
	if err != nil {
		return fmt.Errorf("migrate saga store: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate saga store: %w", err)
	}
	for _, r := range results {
		log.Info("saga store migrated", "version", r.Source.Version, "file", r.Source.Path, "took", r.Duration)
	}
	return nil
}

// PostgreSQL error codes the store turns into sagastore's errors.
const (
	codeForeignKeyViolation  = "23503"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

// wrap names the operation and maps what the driver says to sagastore's
// errors: a lost race is a conflict (reload and retry), a row that vanished
// under a write is a missing saga.
func wrap(err error, format string, args ...any) error {
	op := fmt.Sprintf(format, args...)
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case codeSerializationFailure, codeDeadlockDetected:
			return fmt.Errorf("%s: %w: %w", op, sagastore.ErrConflict, err)
		case codeForeignKeyViolation:
			return fmt.Errorf("%s: %w: %w", op, sagastore.ErrNotFound, err)
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}
