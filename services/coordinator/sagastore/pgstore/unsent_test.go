package pgstore_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/storetest"
)

// TestUnsentServesTheLongestWaitFirst: sagas come in the order of their
// oldest unsent message, whatever their creation order, and each with its
// messages oldest first.
func TestUnsentServesTheLongestWaitFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t, pgtest.Database(t))
	revs := map[string]sagastore.Record{}
	for i, id := range []string{"s0", "s1", "s2"} {
		sg, _ := storetest.Saga(id, "payments", "test", "2.0", t0.Add(time.Duration(i)*time.Minute))
		rev, err := s.Create(ctx, sg, sagastore.Change{Outbox: []bus.Message{message(id+"-a", `{}`)}})
		if err != nil {
			t.Fatal(err)
		}
		revs[id] = rev
	}
	// s0's first message goes out and a new one waits: s0 now has the
	// newest wait. s1 gets a second message behind its first.
	for _, id := range []string{"s0", "s1"} {
		r, err := s.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, r, r.Saga, sagastore.Change{Outbox: []bus.Message{message(id+"-b", `{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sent(ctx, revs["s0"], []string{"s0-a"}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		limit int
		want  []string
	}{
		{10, []string{"s1: [s1-a s1-b]", "s2: [s2-a]", "s0: [s0-b]"}},
		{2, []string{"s1: [s1-a s1-b]", "s2: [s2-a]"}},
	} {
		recs, err := s.Unsent(ctx, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range recs {
			var ids []string
			for _, m := range r.Pending {
				ids = append(ids, m.ID)
			}
			got = append(got, fmt.Sprintf("%s: %v", r.Saga.ID, ids))
			if r.Revision == revs[r.Saga.ID].Revision && r.Saga.ID != "s2" {
				t.Errorf("%s at its creation revision %d", r.Saga.ID, r.Revision)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("unsent(%d) = %q, want %q", tc.limit, got, tc.want)
		}
	}
}
