package pgstore_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/pgstore"
	"github.com/upshift/upshift/services/coordinator/sagastore/storetest"
)

// A saga stored whole in its document, as before its parts were kept
// apart (migration 4), reads back the same once the store migrated it:
// steps (their runs too), targets, batches and roll-back plan.
func TestASagaStoredWholeIsSplitByTheMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.Database(t)
	if err := pgstore.MigrateTo(ctx, url, 3); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 12, 0, 0, 123456789, time.UTC)
	s, _ := storetest.Saga("old", "payments", "test", "2.0", at)
	s.Steps[0] = &saga.Step{ID: s.Steps[0].ID, Phase: events.Precheck, Action: events.ActionCheck, Target: "a",
		Status: saga.StepSucceeded, DispatchedAt: at, StartedAt: at.Add(time.Nanosecond), Run: 2,
		Runs: []saga.Run{{N: 1, StartedAt: at, Progress: "died"}, {N: 2, StartedAt: at.Add(time.Second)}}}
	s.Plan = []string{s.Steps[1].ID, s.Steps[0].ID}
	doc, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	sum := sagastore.Summarize(s)
	db := connect(t, url)
	if _, err := db.Exec(ctx, `INSERT INTO sagas (id, revision, state, kind, team, environment, software, from_version,
		to_version, digest, name, reason, batch, batches, created_at, updated_at, doc)
		VALUES ($1, 7, $2, $3, $4, $5, $6, $7, $8, $9, $10, '', 0, $11, $12, $12, $13)`,
		s.ID, string(s.State), sum.Kind, sum.Team, sum.Environment, sum.Software, sum.From, sum.To, sum.Digest, sum.Name,
		sum.Batches, at, doc); err != nil {
		t.Fatal(err)
	}
	for i, st := range s.Steps {
		if _, err := db.Exec(ctx, `INSERT INTO saga_steps (saga_id, step_id, position, phase, action, target, batch, attempt, status)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, s.ID, st.ID, i, string(st.Phase), string(st.Action), st.Target,
			st.Batch, st.Attempt, string(st.Status)); err != nil {
			t.Fatal(err)
		}
	}
	store := open(t, url) // migrates
	r, err := store.Load(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(r.Saga)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(doc) {
		t.Fatalf("read back after the migration:\n%s\nwant\n%s", got, doc)
	}
	if r.Revision != 7 {
		t.Fatalf("revision %d, want 7", r.Revision)
	}
	var rest map[string]json.RawMessage
	if err := db.QueryRow(ctx, `SELECT doc FROM sagas WHERE id = $1`, s.ID).Scan(&rest); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"steps", "batches", "plan"} {
		if _, ok := rest[k]; ok {
			t.Fatalf("the document still holds %s: %s", k, rest[k])
		}
	}
}
