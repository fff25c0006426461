package coordinatord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/kvstore"
	"github.com/upshift/upshift/services/coordinator/sagastore/pgstore"
)

// Stores a coordinator can keep its sagas in.
const (
	StoreKV       = "kv"       // JetStream KV: nothing but NATS
	StorePostgres = "postgres" // PostgreSQL: steps, audit and outbox as tables
)

// OpenStore opens the store of the kind named; close releases it. kv
// options apply to the KV store.
func OpenStore(ctx context.Context, kind, databaseURL string, js jetstream.JetStream, c streams.Config, log *slog.Logger,
	kv ...kvstore.Option) (store sagastore.Store, close func(), err error) {
	switch kind {
	case StoreKV, "":
		s, err := kvstore.Open(ctx, js, c, kv...)
		return s, func() {}, err
	case StorePostgres:
		if databaseURL == "" {
			return nil, nil, fmt.Errorf("store %s needs a database URL (UPSHIFT_DATABASE_URL)", kind)
		}
		s, err := pgstore.Open(ctx, databaseURL, pgstore.WithLogger(log))
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	}
	return nil, nil, fmt.Errorf("store %q: %s or %s", kind, StoreKV, StorePostgres)
}

// OpenLease returns the lease of the store of the kind named, held by
// instance (with a unique suffix: two processes may share a name).
func OpenLease(ctx context.Context, kind, databaseURL string, js jetstream.JetStream, c streams.Config, instance string,
	ttl time.Duration) (sagastore.Lease, error) {
	switch kind {
	case StoreKV, "":
		return kvstore.OpenLease(ctx, js, c, instance+"/"+uuid.NewString(), ttl)
	case StorePostgres:
		// The lock lasts as long as the session: the ttl says how often it
		// is checked, and how soon a free one is taken.
		return pgstore.NewLease(databaseURL, ttl/3)
	}
	return nil, fmt.Errorf("store %q: %s or %s", kind, StoreKV, StorePostgres)
}

// StoreUnreachable says whether a store failed to open because its server
// is not reachable yet, or still starting: worth waiting for.
func StoreUnreachable(err error) bool {
	var pe *pgconn.PgError
	return service.Unreachable(err) || errors.As(err, &pe) && pe.Code == "57P03" // cannot_connect_now: starting up
}
