package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// A record is read in one statement, so the saga, its parts kept apart
// (see core) and its unsent outbox come from one snapshot; the steps come
// as one array, the messages as parallel arrays, oldest first, rather than
// one row each repeating the saga.
const (
	recordColumns = `s.id, s.doc, s.spread, s.plan, k.steps, s.revision, p.ids, p.subjects, p.data, p.ats, p.targets`
	pendingJoin   = `CROSS JOIN LATERAL (
		SELECT jsonb_agg(st.doc ORDER BY st.position) AS steps FROM saga_steps st WHERE st.saga_id = s.id) k
		CROSS JOIN LATERAL (
		SELECT array_agg(o.id ORDER BY o.position) AS ids,
			array_agg(o.subject ORDER BY o.position) AS subjects,
			array_agg(o.data ORDER BY o.position) AS data,
			array_agg(o.schedule_at ORDER BY o.position) AS ats,
			array_agg(o.schedule_target ORDER BY o.position) AS targets
		FROM saga_outbox o WHERE o.saga_id = s.id AND o.sent_at IS NULL) p`
)

func scanRecord(row pgx.Row) (sagastore.Record, error) {
	var (
		r             sagastore.Record
		id            string
		doc, sp, plan []byte
		steps         []byte
		rev           int64
		ids, subjects []string
		data          [][]byte
		ats           []*time.Time
		targets       []*string
	)
	if err := row.Scan(&id, &doc, &sp, &plan, &steps, &rev, &ids, &subjects, &data, &ats, &targets); err != nil {
		return r, err
	}
	if err := assemble(&r.Saga, doc, sp, plan, steps); err != nil {
		return r, &sagastore.UnreadableError{IDs: []string{id}, Err: err}
	}
	r.Revision = sagastore.Revision(rev)
	for i, id := range ids {
		m := bus.Message{ID: id, Subject: subjects[i], Data: data[i]}
		if ats[i] != nil {
			m.At = ats[i].UTC()
		}
		if targets[i] != nil {
			m.Target = *targets[i]
		}
		r.Pending = append(r.Pending, m)
	}
	return r, nil
}

// assemble decodes a saga from its document and the parts kept apart.
func assemble(sg *saga.Saga, doc, sp, plan, steps []byte) error {
	if err := json.Unmarshal(doc, sg); err != nil {
		return err
	}
	var parts spread
	if sp == nil {
		return errors.New("no targets and batches")
	}
	if err := json.Unmarshal(sp, &parts); err != nil {
		return fmt.Errorf("targets and batches: %w", err)
	}
	sg.Request.Spec.Targets, sg.Batches = parts.Targets, parts.Batches
	if plan != nil {
		if err := json.Unmarshal(plan, &sg.Plan); err != nil {
			return fmt.Errorf("roll-back plan: %w", err)
		}
	}
	if steps != nil {
		if err := json.Unmarshal(steps, &sg.Steps); err != nil {
			return fmt.Errorf("steps: %w", err)
		}
	}
	for i, st := range sg.Steps {
		if st == nil {
			return fmt.Errorf("step %d has no document", i)
		}
	}
	return nil
}

// Load implements sagastore.Store.
func (s *Store) Load(ctx context.Context, id string) (sagastore.Record, error) {
	r, err := scanRecord(s.pool.QueryRow(ctx, `SELECT `+recordColumns+` FROM sagas s `+pendingJoin+` WHERE s.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("load saga %s: %w", id, sagastore.ErrNotFound)
	}
	if err != nil {
		return r, wrap(err, "load saga %s", id)
	}
	return r, nil
}

// Unsent implements sagastore.Store: the sagas whose oldest unsent message
// is oldest come first, so the relay serves the longest wait first.
func (s *Store) Unsent(ctx context.Context, limit int) ([]sagastore.Record, error) {
	if limit <= 0 {
		limit = sagastore.DefaultLimit
	}
	rows, err := s.pool.Query(ctx, `WITH due AS (
			SELECT saga_id, min(position) AS first FROM saga_outbox WHERE sent_at IS NULL
			GROUP BY saga_id ORDER BY first LIMIT $1)
		SELECT `+recordColumns+` FROM due JOIN sagas s ON s.id = due.saga_id `+pendingJoin+`
		ORDER BY due.first`, limit)
	if err != nil {
		return nil, wrap(err, "list unsent outbox")
	}
	var out []sagastore.Record
	var bad sagastore.UnreadableError
	err = collect(rows, &bad, func(row pgx.Row) error {
		r, err := scanRecord(row)
		if err == nil {
			out = append(out, r)
		}
		return err
	})
	if err != nil {
		return nil, wrap(err, "list unsent outbox")
	}
	return out, bad.OrNil()
}

// collect calls scan for each row. A saga it cannot decode is added to bad
// and the listing goes on; any other error stops it.
func collect(rows pgx.Rows, bad *sagastore.UnreadableError, scan func(pgx.Row) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := bad.Add(scan(rows)); err != nil {
			return err
		}
	}
	return rows.Err()
}

// List implements sagastore.Store. It decodes the saga's document alone:
// its steps, targets and batches are kept apart (the batches' number is a
// column).
func (s *Store) List(ctx context.Context, f sagastore.Filter) ([]sagastore.Summary, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if len(f.States) > 0 {
		add("state = ANY($%d)", states(f.States, func(saga.State) bool { return true }))
	}
	if f.Active {
		where = append(where, activeRows)
	}
	if !f.DueBefore.IsZero() {
		add("deadline < $%d", f.DueBefore)
	}
	if !f.Since.IsZero() {
		add("created_at >= $%d", f.Since)
	}
	for _, c := range [][2]string{{"team", f.Team}, {"environment", f.Environment},
		{"software", f.Software}, {"digest", f.Digest}} {
		if c[1] != "" {
			add(c[0]+" = $%d", c[1])
		}
	}
	q := `SELECT id, batches, doc FROM sagas`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = sagastore.DefaultLimit
	}
	args = append(args, limit)
	q += fmt.Sprintf(" ORDER BY created_at DESC, id DESC LIMIT $%d", len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, wrap(err, "list sagas")
	}
	var out []sagastore.Summary
	var bad sagastore.UnreadableError
	err = collect(rows, &bad, func(row pgx.Row) error {
		var id string
		var batches int
		var doc []byte
		var sg saga.Saga
		if err := row.Scan(&id, &batches, &doc); err != nil {
			return err
		}
		if err := json.Unmarshal(doc, &sg); err != nil {
			return &sagastore.UnreadableError{IDs: []string{id}, Err: err}
		}
		sum := sagastore.Summarize(sg)
		sum.Batches = batches
		out = append(out, sum)
		return nil
	})
	if err != nil {
		return nil, wrap(err, "list sagas")
	}
	return out, bad.OrNil()
}

// CountActive implements sagastore.Store: the active rows only, by their
// state column, each checked against its document's state without decoding
// the rest (its steps): a document whose state disagrees, or that has none,
// is damaged and counted as unreadable.
func (s *Store) CountActive(ctx context.Context) (map[saga.State]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, state, doc->>'state' FROM sagas WHERE `+activeRows)
	if err != nil {
		return nil, wrap(err, "count sagas")
	}
	out := map[saga.State]int{}
	var bad sagastore.UnreadableError
	err = collect(rows, &bad, func(row pgx.Row) error {
		var id, st string
		var docState *string
		if err := row.Scan(&id, &st, &docState); err != nil {
			return err
		}
		if docState == nil || *docState != st {
			return &sagastore.UnreadableError{IDs: []string{id}, Err: fmt.Errorf("its document's state is not its row's %q", st)}
		}
		out[saga.State(st)]++
		return nil
	})
	if err != nil {
		return nil, wrap(err, "count sagas")
	}
	return out, bad.OrNil()
}

// activeRows selects the sagas not ended, in words the planner matches to
// the partial index sagas_active_idx: a literal list, not a parameter (a
// generic plan could not prove a parameter's list covers the index's).
var activeRows = func() string {
	var quoted []string
	for _, st := range states(saga.States, saga.State.Terminal) {
		quoted = append(quoted, "'"+st+"'") // constants of ours, no quote in them
	}
	return "state NOT IN (" + strings.Join(quoted, ", ") + ")"
}()

func states(all []saga.State, keep func(saga.State) bool) []string {
	var out []string
	for _, st := range all {
		if keep(st) {
			out = append(out, string(st))
		}
	}
	return out
}

// History implements sagastore.Store.
func (s *Store) History(ctx context.Context, id string) ([]sagastore.Entry, error) {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sagas WHERE id = $1)`, id).Scan(&exists); err != nil {
		return nil, wrap(err, "read audit of %s", id)
	}
	if !exists {
		return nil, fmt.Errorf("read audit of %s: %w", id, sagastore.ErrNotFound)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, saga_id, seq, at, direction, type, subject, coalesce(note, ''), event
		FROM saga_audit WHERE saga_id = $1 ORDER BY position`, id)
	if err != nil {
		return nil, wrap(err, "read audit of %s", id)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (sagastore.Entry, error) {
		var e sagastore.Entry
		var event []byte
		err := row.Scan(&e.ID, &e.Saga, &e.Seq, &e.At, &e.Direction, &e.Type, &e.Subject, &e.Note, &event)
		e.At = e.At.UTC()
		if event != nil {
			e.Event = json.RawMessage(event)
		}
		return e, err
	})
	if err != nil {
		return nil, wrap(err, "read audit of %s", id)
	}
	return out, nil
}
