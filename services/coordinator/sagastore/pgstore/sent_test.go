package pgstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/storetest"
)

// TestSentFromManyFlushesAtOnce: the marks of concurrent flushes share
// statements, and each flush's messages, and only those, end marked.
// After Close, Sent fails rather than waits.
func TestSentFromManyFlushesAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.Database(t)
	s := open(t, url)
	const sagas = 60
	recs := make([]sagastore.Record, sagas)
	for i := range sagas {
		id := fmt.Sprintf("s%d", i)
		sg, _ := storetest.Saga(id, "payments", "test", "2.0", t0)
		var err error
		recs[i], err = s.Create(ctx, sg, sagastore.Change{Outbox: []bus.Message{
			{ID: id + "-a", Subject: "upshift.evt.x.saga.test", Data: []byte(`{}`)},
			{ID: id + "-b", Subject: "upshift.evt.x.saga.test", Data: []byte(`{}`)}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i, r := range recs {
		wg.Go(func() {
			ids := []string{r.Saga.ID + "-a", r.Saga.ID + "-b"}
			if i%3 == 0 {
				ids = ids[:1] // these keep their second message pending
			}
			if err := s.Sent(ctx, r, ids); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range sagas {
		r, err := s.Load(ctx, fmt.Sprintf("s%d", i))
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		if i%3 == 0 {
			want = 1
		}
		if len(r.Pending) != want || (want == 1 && r.Pending[0].ID != r.Saga.ID+"-b") {
			t.Errorf("%s: pending %v, want %d", r.Saga.ID, r.Pending, want)
		}
	}
	s.Close()
	if err := s.Sent(ctx, recs[0], []string{"s0-b"}); err == nil {
		t.Error("Sent after Close succeeded")
	}
}
