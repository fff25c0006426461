package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// withdrawTimeout bounds the deletion of a stopping process's entries.
const withdrawTimeout = 2 * time.Second

// Announcer keeps one process's entries in the registry: put at start, put
// again every interval (a third of the bucket's TTL, so one lost beat does
// not expire them), deleted when the process stops gracefully. A process
// that dies leaves them to expire with the bucket's TTL.
type Announcer struct {
	kv    jetstream.KeyValue
	every time.Duration
	// entries describes what the process serves now (the installed version
	// changes with deploys); Seen is set here.
	entries func() []Entry
	now     func() time.Time
	log     *slog.Logger
}

// NewAnnouncer returns an announcer that refreshes every ttl/3.
func NewAnnouncer(kv jetstream.KeyValue, ttl time.Duration, entries func() []Entry, log *slog.Logger) *Announcer {
	return &Announcer{kv: kv, every: max(ttl/3, 10*time.Millisecond), entries: entries,
		now: func() time.Time { return time.Now().UTC() }, log: log}
}

// Announce puts every entry once.
func (a *Announcer) Announce(ctx context.Context) error {
	now := a.now()
	var errs []error
	for _, e := range a.entries() {
		e.Seen = now
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if _, err := a.kv.Put(ctx, e.Key(), b); err != nil {
			errs = append(errs, fmt.Errorf("announce %s: %w", e.Key(), err))
		}
	}
	return errors.Join(errs...)
}

// Run announces every interval until ctx ends, then withdraws the entries.
// A failed beat is logged and tried again at the next.
func (a *Announcer) Run(ctx context.Context) error {
	t := time.NewTicker(a.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			a.Withdraw(context.WithoutCancel(ctx))
			return nil
		case <-t.C:
			if err := a.Announce(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn("registry heartbeat failed; entries expire unless the next one succeeds", "err", err)
			}
		}
	}
}

// Withdraw deletes the entries, so the coordinator refuses their targets at
// once rather than when they expire.
func (a *Announcer) Withdraw(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, withdrawTimeout)
	defer cancel()
	for _, e := range a.entries() {
		if err := a.kv.Delete(ctx, e.Key()); err != nil {
			a.log.Warn("cannot withdraw a target from the registry; it expires with the bucket's TTL", "key", e.Key(), "err", err)
		}
	}
}
