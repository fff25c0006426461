package pgstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/storetest"
)

// stepRow is what an operator reads from saga_steps.
type stepRow struct {
	ID, Phase, Action, Target, Status   string
	Position, Batch, Attempt            int
	Compensates, Error                  *string
	DispatchedAt, StartedAt, FinishedAt *time.Time
	Output                              map[string]string
	XMin                                uint32 // the transaction that last wrote the row
}

func stepRows(t *testing.T, conn *pgx.Conn, sagaID string) []stepRow {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT step_id, phase, action, target, status, position,
		batch, attempt, compensates, error, dispatched_at, started_at, finished_at, output, xmin
		FROM saga_steps WHERE saga_id = $1 ORDER BY position`, sagaID)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (stepRow, error) {
		var r stepRow
		var output []byte
		err := row.Scan(&r.ID, &r.Phase, &r.Action, &r.Target, &r.Status, &r.Position, &r.Batch, &r.Attempt,
			&r.Compensates, &r.Error, &r.DispatchedAt, &r.StartedAt, &r.FinishedAt, &output, &r.XMin)
		if err == nil && output != nil {
			err = json.Unmarshal(output, &r.Output)
		}
		return r, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkMirror compares the table with the saga's steps, field by field.
func checkMirror(t *testing.T, conn *pgx.Conn, s saga.Saga) []stepRow {
	t.Helper()
	rows := stepRows(t, conn, s.ID)
	if len(rows) != len(s.Steps) {
		t.Fatalf("%d step rows for %d steps", len(rows), len(s.Steps))
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	tm := func(p *time.Time) time.Time {
		if p == nil {
			return time.Time{}
		}
		return *p
	}
	for i, st := range s.Steps {
		r := rows[i]
		got := fmt.Sprint(r.ID, r.Position, r.Phase, r.Action, r.Target, r.Batch, r.Attempt, r.Status,
			str(r.Compensates), str(r.Error), r.Output)
		want := fmt.Sprint(st.ID, i, st.Phase, st.Action, st.Target, st.Batch, st.Attempt, st.Status,
			st.Compensates, st.Error, st.Output)
		if got != want {
			t.Errorf("step %d:\n got %s\nwant %s", i, got, want)
		}
		if !tm(r.DispatchedAt).Equal(st.DispatchedAt) || !tm(r.StartedAt).Equal(st.StartedAt) || !tm(r.FinishedAt).Equal(st.FinishedAt) {
			t.Errorf("step %s times: row %v %v %v, saga %v %v %v", st.ID, r.DispatchedAt, r.StartedAt, r.FinishedAt,
				st.DispatchedAt, st.StartedAt, st.FinishedAt)
		}
	}
	return rows
}

func TestStepsTableMirrorsTheSaga(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.Database(t)
	s, conn := open(t, url), connect(t, url)
	sg, _ := storetest.Saga("s1", "payments", "test", "2.0", t0)
	rev, err := s.Create(ctx, sg, sagastore.Change{})
	if err != nil {
		t.Fatal(err)
	}
	created := checkMirror(t, conn, sg)

	// The first precheck succeeds: one row changes, the other is left
	// alone rather than rewritten.
	sg = report(t, sg, 0, events.StatusSucceeded, t0.Add(time.Minute), map[string]string{"free": "10G"})
	if rev, err = s.Update(ctx, rev, sg, sagastore.Change{}); err != nil {
		t.Fatal(err)
	}
	rows := checkMirror(t, conn, sg)
	if rows[0].XMin == created[0].XMin || rows[1].XMin != created[1].XMin {
		t.Errorf("rows rewritten: changed step %v -> %v, unchanged step %v -> %v",
			created[0].XMin, rows[0].XMin, created[1].XMin, rows[1].XMin)
	}

	// The second fails: the saga fails, and the failure is in the table.
	sg = report(t, sg, 1, events.StatusFailed, t0.Add(2*time.Minute), nil)
	if sg.State != saga.StateFailed {
		t.Fatalf("state %s after a failed precheck", sg.State)
	}
	if rev, err = s.Update(ctx, rev, sg, sagastore.Change{}); err != nil {
		t.Fatal(err)
	}
	rows = checkMirror(t, conn, sg)
	if rows[1].Error == nil || *rows[1].Error != "disk full" {
		t.Errorf("failed step row %+v", rows[1])
	}

	// A step gone from the saga is gone from the table.
	sg.Steps = sg.Steps[1:]
	if _, err = s.Update(ctx, rev, sg, sagastore.Change{}); err != nil {
		t.Fatal(err)
	}
	checkMirror(t, conn, sg)
}
