package coordinator

import (
	"fmt"
	"testing"

	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// recent keeps the newest record of each saga in flight, at most
// recentSize, and none of a saga that ended.
func TestRecentKeepsTheNewestOfSagasInFlight(t *testing.T) {
	var r recent
	rec := func(id string, rev sagastore.Revision, st saga.State) sagastore.Record {
		return sagastore.Record{Saga: saga.Saga{ID: id, State: st}, Revision: rev}
	}
	r.put(rec("a", 2, saga.StateDeploying))
	r.put(rec("a", 1, saga.StateBackingUp)) // an older change, put late
	if got, ok := r.get("a"); !ok || got.Revision != 2 {
		t.Fatalf("kept %+v, %v: want revision 2", got, ok)
	}
	r.put(rec("a", 3, saga.StateSucceeded))
	if _, ok := r.get("a"); ok {
		t.Fatal("an ended saga kept")
	}
	for i := range recentSize + 10 {
		r.put(rec(fmt.Sprint(i), 1, saga.StateDeploying))
	}
	if n := len(r.recs); n != recentSize {
		t.Fatalf("%d kept, want at most %d", n, recentSize)
	}
	if _, ok := r.get(fmt.Sprint(recentSize + 9)); !ok {
		t.Fatal("the saga put last is not kept")
	}
	r.forget(fmt.Sprint(recentSize + 9))
	if _, ok := r.get(fmt.Sprint(recentSize + 9)); ok {
		t.Fatal("kept after forget")
	}
}
