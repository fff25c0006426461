package kvstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/kvstore"
	"github.com/upshift/upshift/services/coordinator/sagastore/storetest"
)

// On a three-node cluster, reading sagas' audit logs, many at once, never
// fails. The soak found one History of five failing at its end: a pull on
// the ordered consumer just made met no responder (1 to 5 readings of 200
// here), and the reading gave up.
func TestHistoryOnACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := natstest.StartCluster(t)
	_, js := c.Connect(t)
	ctx := context.Background()
	s, err := kvstore.Open(ctx, js, c.Streams())
	if err != nil {
		t.Fatal(err)
	}
	const sagas = 20
	for i := range sagas {
		id := fmt.Sprintf("s%d", i)
		sg, _ := storetest.Saga(id, "payments", "test", "2.0", time.Now())
		if _, err := s.Create(ctx, sg, sagastore.Change{}); err != nil {
			t.Fatal(err)
		}
		for j := range 30 {
			b, _ := json.Marshal(sagastore.Entry{ID: fmt.Sprintf("out/%d", j), Saga: id, At: time.Now(), Direction: sagastore.Out})
			if _, err := js.Publish(ctx, events.AuditSubject(id), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []error
	for w := range 8 {
		wg.Go(func() {
			for i := range 25 {
				id := fmt.Sprintf("s%d", (w+i)%sagas)
				h, err := s.History(ctx, id)
				if err == nil && len(h) != 30 {
					err = fmt.Errorf("%s: %d entries, want 30", id, len(h))
				}
				if err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of 200 readings failed, first: %v", len(failed), failed[0])
	}
}
