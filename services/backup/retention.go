package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/targets"
)

// Ended tells whether a saga has ended. The backup service cannot see the
// coordinator's store; it reads the EVENTS stream, where the coordinator
// announces every state a saga enters.
type Ended func(ctx context.Context, saga string) (bool, error)

// EndedFromEvents reads EVENTS: a saga has ended if one of its terminal
// states was announced (upshift.evt.<saga>.saga.<state>), or if nothing of
// it is there at all (its events expired with the stream's retention, a
// year: no saga waits that long). A saga with events and no terminal one
// is running, and its backup is kept whatever its age.
func EndedFromEvents(js jetstream.JetStream) Ended {
	return func(ctx context.Context, id string) (bool, error) {
		st, err := js.Stream(ctx, events.StreamEvents)
		if err != nil {
			return false, err
		}
		for _, s := range append(terminalStates(), saga.StateRequested) {
			_, err := st.GetLastMsgForSubject(ctx, events.SagaSubject(id, string(s)))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return false, err
			}
			return s != saga.StateRequested, nil
		}
		return true, nil
	}
}

func terminalStates() []saga.State {
	var out []saga.State
	for _, s := range saga.States {
		if s.Terminal() {
			out = append(out, s)
		}
	}
	return out
}

// retain keeps the newest keep backups of t for the software of m (the one
// just made), and removes older ones whose saga has ended; a backup of a
// saga still running is never removed, however many there are. It returns
// the sagas whose backups it removed. Nor is the backup of saga keep, if
// any: the one a restore by hand is about to put back.
func (e *Executor) retain(ctx context.Context, t targets.Target, m *Manifest, keep string) ([]string, error) {
	if e.Keep <= 0 || e.Ended == nil {
		return nil, nil
	}
	all, err := e.list(ctx, t)
	if err != nil {
		return nil, err
	}
	var same []*Manifest
	for _, b := range all {
		if b.Software == m.Software {
			same = append(same, b)
		}
	}
	sort.SliceStable(same, func(i, j int) bool { return same[i].Created.After(same[j].Created) })
	var removed []string
	for i, b := range same {
		if i < e.Keep || b.Saga == m.Saga || b.Saga == keep {
			continue
		}
		ended, err := e.Ended(ctx, b.Saga)
		if err != nil {
			return removed, fmt.Errorf("is saga %s over: %w", b.Saga, err)
		}
		if !ended {
			continue
		}
		if err := e.remove(ctx, t, b.Saga); err != nil {
			return removed, err
		}
		removed = append(removed, b.Saga)
	}
	return removed, nil
}

// list returns the complete backups of t where this instance keeps them.
func (e *Executor) list(ctx context.Context, t targets.Target) ([]*Manifest, error) {
	if e.Store != nil {
		return e.Store.List(ctx, t.Name)
	}
	des, err := os.ReadDir(t.Backup.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Manifest
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		if m, err := ReadManifest(filepath.Join(t.Backup.Dir, de.Name())); err == nil && m.Target == t.Name && m.Saga == de.Name() {
			out = append(out, m)
		}
	}
	return out, nil
}

func (e *Executor) remove(ctx context.Context, t targets.Target, id string) error {
	if e.Store != nil {
		return e.Store.Delete(ctx, t.Name, id)
	}
	return os.RemoveAll(Dir(t, id))
}
