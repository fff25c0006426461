package pgstore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/services/coordinator/sagastore/pgstore"
)

// The in-flight count and the listings of active sagas can read the partial
// index of the sagas not ended, not every row: the planner proves their
// predicate within the index's. (Sequential scans are off so that the plan
// says whether the index can be used, not whether a tiny table is cheaper
// to scan.)
func TestActiveSagasAreReadThroughTheirIndex(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	open(t, url)
	conn := connect(t, url)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"SELECT id, state, doc->>'state' FROM sagas WHERE " + pgstore.ActiveRows,
		"SELECT id FROM sagas WHERE " + pgstore.ActiveRows + " ORDER BY created_at DESC, id DESC LIMIT 100",
	} {
		rows, err := conn.Query(ctx, "EXPLAIN "+q)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(plan, "\n"), "sagas_active_idx") {
			t.Fatalf("%s\nreads no index of active sagas:\n%s", q, strings.Join(plan, "\n"))
		}
	}
}
