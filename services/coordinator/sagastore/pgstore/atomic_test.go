package pgstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/pgstore"
	"github.com/upshift/upshift/services/coordinator/sagastore/storetest"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func message(id, data string) bus.Message {
	return bus.Message{ID: id, Subject: "upshift.evt.s1.saga.test", Data: []byte(data)}
}

func audit(id, event string) sagastore.Entry {
	return sagastore.Entry{ID: "in/" + id, Saga: "s1", Seq: 1, At: t0, Direction: sagastore.In,
		Type: "io.upshift.test", Subject: "upshift.evt.s1.saga.test", Event: json.RawMessage(event)}
}

// report applies a phase service's report on the saga's i-th step.
func report(t *testing.T, s saga.Saga, i int, status events.Status, at time.Time, output map[string]string) saga.Saga {
	t.Helper()
	st := s.Steps[i]
	next, eff := saga.Apply(s, saga.Input{Kind: saga.InputReport, At: at, Result: &events.StepResult{
		Step: st.ID, Saga: s.ID, Phase: st.Phase, Action: st.Action, Target: st.Target, Attempt: st.Attempt,
		Status: status, Output: output, Error: map[bool]string{true: "disk full"}[status == events.StatusFailed],
		StartedAt: at.Add(-time.Second), FinishedAt: at}})
	if eff.Ignored != "" {
		t.Fatalf("report on %s ignored: %s", st.ID, eff.Ignored)
	}
	return next
}

// snapshot returns every row of every table, as text.
func snapshot(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT 'saga ' || row_to_json(t)::text FROM sagas t ORDER BY id`,
		`SELECT 'step ' || row_to_json(t)::text FROM saga_steps t ORDER BY saga_id, position`,
		`SELECT 'audit ' || row_to_json(t)::text FROM saga_audit t ORDER BY position`,
		`SELECT 'outbox ' || row_to_json(t)::text FROM saga_outbox t ORDER BY position`,
	} {
		rows, err := conn.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, lines...)
	}
	return out
}

// TestFailedUpdateWritesNothing makes the last write of an update fail and
// checks that every table is exactly as before, and that the saga can then
// be updated from the same revision: nothing moved, nothing stayed locked.
func TestFailedUpdateWritesNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change sagastore.Change
		is     error
	}{
		{"AuditEventNotJSON", sagastore.Change{
			Outbox: []bus.Message{message("m2", `{"id":"m2"}`)},
			Audit:  []sagastore.Entry{audit("ok", `{"id":"ok"}`), audit("bad", `{"id":`)}}, nil},
		{"OutboxIDTakenByAnotherMessage", sagastore.Change{
			Outbox: []bus.Message{message("m2", `{"id":"m2"}`), message("m1", `{"id":"other"}`)},
			Audit:  []sagastore.Entry{audit("ok", `{"id":"ok"}`)}}, pgstore.ErrDuplicateMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url := pgtest.Database(t)
			s, conn := open(t, url), connect(t, url)
			sg, _ := storetest.Saga("s1", "payments", "test", "2.0", t0)
			rev, err := s.Create(ctx, sg, sagastore.Change{Outbox: []bus.Message{message("m1", `{"id":"m1"}`)},
				Audit: []sagastore.Entry{audit("first", `{"id":"first"}`)}})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Sent(ctx, rev, []string{"m1"}); err != nil {
				t.Fatal(err)
			}
			next := report(t, sg, 0, events.StatusSucceeded, t0.Add(time.Minute), map[string]string{"free": "10G"})
			before := snapshot(t, conn)

			_, err = s.Update(ctx, rev, next, tc.change)
			if err == nil || errors.Is(err, sagastore.ErrConflict) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("update: %v, want a failure (%v)", err, tc.is)
			}
			t.Logf("refused: %v", err)
			if after := snapshot(t, conn); !slices.Equal(after, before) {
				t.Fatalf("a failed update changed the tables:\n%s", diff(before, after))
			}
			if _, err := s.Update(ctx, rev, next, sagastore.Change{Outbox: []bus.Message{message("m2", `{}`)}}); err != nil {
				t.Fatalf("update from the same revision afterwards: %v", err)
			}
		})
	}
}

func TestFailedCreateWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.Database(t)
	s, conn := open(t, url), connect(t, url)
	sg, _ := storetest.Saga("s1", "payments", "test", "2.0", t0)
	_, err := s.Create(ctx, sg, sagastore.Change{Outbox: []bus.Message{message("m1", `{}`)},
		Audit: []sagastore.Entry{audit("bad", `not json`)}})
	if err == nil {
		t.Fatal("create with a broken audit entry succeeded")
	}
	if rows := snapshot(t, conn); len(rows) != 0 {
		t.Fatalf("a failed create wrote %q", rows)
	}
	if _, err := s.Load(ctx, "s1"); !errors.Is(err, sagastore.ErrNotFound) {
		t.Fatalf("load after a failed create: %v", err)
	}
}

// TestSameMessageTwiceIsKeptOnce: a message written again with the same
// content (a replayed change) is not an error and not a second row.
func TestSameMessageTwiceIsKeptOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t, pgtest.Database(t))
	sg, _ := storetest.Saga("s1", "payments", "test", "2.0", t0)
	due := bus.Message{ID: "s1/timer/1", Subject: "upshift.timer.schedule.s1.1", Data: []byte(`{}`),
		At: t0.Add(time.Hour), Target: "upshift.timer.fire.s1"}
	rev, err := s.Create(ctx, sg, sagastore.Change{Outbox: []bus.Message{due}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, rev, sg, sagastore.Change{Outbox: []bus.Message{due}}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Load(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Pending) != 1 || !r.Pending[0].At.Equal(due.At) || r.Pending[0].Target != due.Target {
		t.Fatalf("pending %+v", r.Pending)
	}
	due.Target = "elsewhere"
	if _, err := s.Update(ctx, r, sg, sagastore.Change{Outbox: []bus.Message{due}}); !errors.Is(err, pgstore.ErrDuplicateMessage) {
		t.Fatalf("same id, another target: %v", err)
	}
}

// diff lists the rows only before has (-) and only after has (+).
func diff(before, after []string) string {
	var out []string
	for _, r := range before {
		if !slices.Contains(after, r) {
			out = append(out, "- "+r)
		}
	}
	for _, r := range after {
		if !slices.Contains(before, r) {
			out = append(out, "+ "+r)
		}
	}
	return strings.Join(out, "\n")
}
