package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

const sagaColumns = `state, kind, team, environment, software, from_version, to_version, digest, name,
	reason, batch, batches, created_at, updated_at, deadline, doc`

// sagaValues returns the values of sagaColumns, in order: the document
// without the parts kept apart (see core).
func sagaValues(s saga.Saga) ([]any, error) {
	doc, err := json.Marshal(core(s))
	if err != nil {
		return nil, fmt.Errorf("encode saga %s: %w", s.ID, err)
	}
	sum := sagastore.Summarize(s)
	return []any{string(sum.State), sum.Kind, sum.Team, sum.Environment, sum.Software, sum.From, sum.To,
		sum.Digest, sum.Name, sum.Reason, sum.Batch, sum.Batches, s.CreatedAt, s.UpdatedAt, at(s.Deadline), doc}, nil
}

// core is the saga less what grows with its targets, kept apart: its steps
// (rows of saga_steps), its targets and batches (spread, written once) and
// its roll-back plan (plan, written when it changes). A transition then
// writes what it changed, whatever the size of the fleet.
func core(s saga.Saga) saga.Saga {
	s.Steps, s.Batches, s.Plan = nil, nil, nil
	s.Request.Spec.Targets = nil
	return s
}

// spread is a saga's targets and batches, fixed at its creation.
type spread struct {
	Targets []string   `json:"targets"`
	Batches [][]string `json:"batches"`
}

// Create implements sagastore.Store.
func (s *Store) Create(ctx context.Context, sg saga.Saga, ch sagastore.Change) (sagastore.Record, error) {
	vals, err := sagaValues(sg)
	if err != nil {
		return sagastore.Record{}, err
	}
	sp, err := json.Marshal(spread{Targets: sg.Request.Spec.Targets, Batches: sg.Batches})
	if err != nil {
		return sagastore.Record{}, fmt.Errorf("encode saga %s: %w", sg.ID, err)
	}
	plan, err := optionalJSON(sg.Plan != nil, sg.Plan)
	if err != nil {
		return sagastore.Record{}, fmt.Errorf("encode saga %s: %w", sg.ID, err)
	}
	var rev int64
	var added []bus.Message
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO sagas (id, revision, spread, plan, `+sagaColumns+`)
			VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
			ON CONFLICT (id) DO NOTHING RETURNING revision`, append([]any{sg.ID, sp, plan}, vals...)...).Scan(&rev)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("create saga %s: %w", sg.ID, sagastore.ErrExists)
		}
		if err != nil {
			return wrap(err, "create saga %s", sg.ID)
		}
		added, err = writeChange(ctx, tx, nil, sg, ch)
		return err
	})
	if err != nil {
		return sagastore.Record{}, err
	}
	return sagastore.Record{Saga: sg, Revision: sagastore.Revision(rev), Pending: added}, nil
}

// Update implements sagastore.Store. The row lock the UPDATE takes makes a
// concurrent updater wait, then find the revision moved and match nothing.
func (s *Store) Update(ctx context.Context, from sagastore.Record, sg saga.Saga, ch sagastore.Change) (sagastore.Record, error) {
	vals, err := sagaValues(sg)
	if err != nil {
		return sagastore.Record{}, err
	}
	args := append([]any{sg.ID, int64(from.Revision)}, vals...)
	setPlan := ""
	if !samePlan(from.Saga.Plan, sg.Plan) {
		plan, err := optionalJSON(sg.Plan != nil, sg.Plan)
		if err != nil {
			return sagastore.Record{}, fmt.Errorf("encode saga %s: %w", sg.ID, err)
		}
		args, setPlan = append(args, plan), ", plan = $19"
	}
	var next int64
	var added []bus.Message
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE sagas SET revision = revision + 1, (`+sagaColumns+`) =
			ROW($3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`+setPlan+`
			WHERE id = $1 AND revision = $2 RETURNING revision`, args...).Scan(&next)
		if errors.Is(err, pgx.ErrNoRows) {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sagas WHERE id = $1)`, sg.ID).Scan(&exists); err != nil {
				return wrap(err, "update saga %s", sg.ID)
			}
			if !exists {
				return fmt.Errorf("update saga %s: %w", sg.ID, sagastore.ErrNotFound)
			}
			return fmt.Errorf("update saga %s at revision %d: %w", sg.ID, from.Revision, sagastore.ErrConflict)
		}
		if err != nil {
			return wrap(err, "update saga %s", sg.ID)
		}
		added, err = writeChange(ctx, tx, from.Saga.Steps, sg, ch)
		return err
	})
	if err != nil {
		return sagastore.Record{}, err
	}
	// The row was at from's revision, so from's pending messages were the
	// unsent ones then (a flush may have sent some since: sent again, they
	// are dropped as duplicates).
	return sagastore.Record{Saga: sg, Revision: sagastore.Revision(next),
		Pending: append(ch.Unsent(from.Pending), added...)}, nil
}

// samePlan reports whether a roll-back plan is as it was: the machine
// shares an unchanged plan with the saga before, so most are the same
// list, and a new one is compared.
func samePlan(was, now []string) bool {
	if len(was) != len(now) {
		return false
	}
	return len(now) == 0 || &was[0] == &now[0] || slices.Equal(was, now)
}

// writeChange writes what goes with a saga row, in one round trip: its
// steps that are not as they were (the saga's row was at the revision
// they are from, so its step rows are those), the change's audit entries
// and outbox messages. An outbox id
// already taken is fine if the stored message is the same one, and refused
// otherwise. It returns the outbox messages it added: not those taken.
func writeChange(ctx context.Context, tx pgx.Tx, was []*saga.Step, sg saga.Saga, ch sagastore.Change) ([]bus.Message, error) {
	b := &pgx.Batch{}
	if err := queueSteps(b, was, sg); err != nil {
		return nil, err
	}
	queueAudit(b, ch.Audit)
	if len(ch.Sent) > 0 {
		// Rows locked in id order, as the marker locks them (a plain
		// UPDATE locks in whatever order its plan reads them): the two
		// may mark the same rows at once (the relay's flush), and must
		// not deadlock.
		b.Queue(`UPDATE saga_outbox SET sent_at = now() WHERE id IN (SELECT id FROM saga_outbox
			WHERE id = ANY($1) AND saga_id = $2 AND sent_at IS NULL ORDER BY id FOR UPDATE)`, ch.Sent, sg.ID)
	}
	var added, taken []bus.Message
	for _, m := range ch.Outbox {
		b.Queue(`INSERT INTO saga_outbox (id, saga_id, subject, data, schedule_at, schedule_target)
			VALUES ($1, $2, $3, $4, $5, NULLIF($6, '')) ON CONFLICT (id) DO NOTHING`,
			m.ID, sg.ID, m.Subject, data(m), at(m.At), m.Target).Exec(func(ct pgconn.CommandTag) error {
			if ct.RowsAffected() == 0 {
				taken = append(taken, m)
			} else {
				added = append(added, m)
			}
			return nil
		})
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, wrap(err, "write saga %s", sg.ID)
	}
	for _, m := range taken {
		var same bool
		err := tx.QueryRow(ctx, `SELECT saga_id = $2 AND subject = $3 AND data = $4
			AND schedule_at IS NOT DISTINCT FROM $5 AND schedule_target IS NOT DISTINCT FROM NULLIF($6, '')
			FROM saga_outbox WHERE id = $1`, m.ID, sg.ID, m.Subject, data(m), at(m.At), m.Target).Scan(&same)
		if err != nil {
			return nil, wrap(err, "write saga %s: message %s", sg.ID, m.ID)
		}
		if !same {
			return nil, fmt.Errorf("write saga %s: message %s: %w", sg.ID, m.ID, ErrDuplicateMessage)
		}
	}
	return added, nil
}

// queueSteps mirrors the saga's steps: only a step that is new or not as
// it was is written (a transition changes one or a few; the statement's
// own comparison leaves a row that is the same alone all the same), and a
// step no longer in the saga is removed. The machine appends steps and
// shares those it did not change with the saga before, so a step at the
// same place and the same pointer is the same; anything else is compared.
func queueSteps(b *pgx.Batch, was []*saga.Step, sg saga.Saga) error {
	appended := len(was) <= len(sg.Steps)
	for i := 0; appended && i < len(was); i++ {
		appended = was[i] == sg.Steps[i] || was[i].ID == sg.Steps[i].ID
	}
	var before map[string]int
	if !appended {
		before = make(map[string]int, len(was))
		for i, st := range was {
			before[st.ID] = i
		}
	}
	kept := 0
	for i, st := range sg.Steps {
		j, ok := i, i < len(was)
		if !appended {
			j, ok = before[st.ID]
		}
		if ok {
			kept++
			if j == i && (was[j] == st || reflect.DeepEqual(*was[j], *st)) {
				continue
			}
		}
		output, err := optionalJSON(len(st.Output) > 0, st.Output)
		if err != nil {
			return fmt.Errorf("encode step %s: %w", st.ID, err)
		}
		report, err := optionalJSON(len(st.Report) > 0, st.Report)
		if err != nil {
			return fmt.Errorf("encode step %s: %w", st.ID, err)
		}
		doc, err := json.Marshal(st)
		if err != nil {
			return fmt.Errorf("encode step %s: %w", st.ID, err)
		}
		b.Queue(upsertStep, sg.ID, st.ID, doc, i, string(st.Phase), string(st.Action), st.Target, st.Batch, st.Attempt,
			string(st.Status), st.Compensates, at(st.DispatchedAt), at(st.Deadline), at(st.StartedAt),
			at(st.HeartbeatAt), at(st.FinishedAt), st.Done, string(st.Late), st.Progress, st.Reason, st.Error,
			output, report)
	}
	if kept < len(was) {
		ids := make([]string, 0, len(sg.Steps))
		for _, st := range sg.Steps {
			ids = append(ids, st.ID)
		}
		b.Queue(`DELETE FROM saga_steps WHERE saga_id = $1 AND step_id <> ALL($2::text[])`, sg.ID, ids)
	}
	return nil
}

const stepColumns = `position, phase, action, target, batch, attempt, status, compensates, dispatched_at,
	deadline, started_at, heartbeat_at, finished_at, done, late, progress, reason, error, output, report`

const upsertStep = `INSERT INTO saga_steps (saga_id, step_id, doc, ` + stepColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULLIF($11, ''), $12, $13, $14, $15, $16, NULLIF($17, 0),
		NULLIF($18, ''), NULLIF($19, ''), NULLIF($20, ''), NULLIF($21, ''), $22, $23)
	ON CONFLICT (saga_id, step_id) DO UPDATE SET (doc, ` + stepColumns + `) = ROW(EXCLUDED.doc, EXCLUDED.position,
		EXCLUDED.phase, EXCLUDED.action, EXCLUDED.target, EXCLUDED.batch, EXCLUDED.attempt, EXCLUDED.status,
		EXCLUDED.compensates, EXCLUDED.dispatched_at, EXCLUDED.deadline, EXCLUDED.started_at,
		EXCLUDED.heartbeat_at, EXCLUDED.finished_at, EXCLUDED.done, EXCLUDED.late, EXCLUDED.progress,
		EXCLUDED.reason, EXCLUDED.error, EXCLUDED.output, EXCLUDED.report)
	WHERE (saga_steps.*) IS DISTINCT FROM (EXCLUDED.*)`

func queueAudit(b *pgx.Batch, entries []sagastore.Entry) {
	for _, e := range entries {
		var event []byte // NULL when there is no event
		if len(e.Event) > 0 {
			event = e.Event
		}
		b.Queue(`INSERT INTO saga_audit (id, saga_id, seq, at, direction, type, subject, note, event)
			VALUES ($1, $2, $3, $4, $5, $6, $7, NULLIF($8, ''), $9::json) ON CONFLICT (id) DO NOTHING`,
			e.ID, e.Saga, e.Seq, e.At, string(e.Direction), e.Type, e.Subject, e.Note, event)
	}
}

// Record implements sagastore.Store.
func (s *Store) Record(ctx context.Context, entries []sagastore.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	queueAudit(b, entries)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
	if err != nil {
		return wrap(err, "record audit of %s", entries[0].Saga)
	}
	return nil
}

// at turns a zero time into NULL.
func at(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// data never returns nil: an empty message is stored as empty, not NULL.
func data(m bus.Message) []byte {
	if m.Data == nil {
		return []byte{}
	}
	return m.Data
}

// optionalJSON encodes v, or returns NULL when present is false.
func optionalJSON(present bool, v any) ([]byte, error) {
	if !present {
		return nil, nil
	}
	return json.Marshal(v)
}
