package coordinator

import (
	"sync"

	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// recentSize bounds the sagas whose last stored record an instance keeps:
// more sagas in flight than this are read from the store, as before, for
// some of their inputs.
const recentSize = 1024

// recent keeps the record of each saga as this instance last stored it, so
// that the saga's next input (mostly the report of the command just sent)
// is applied without reading it again. A record kept may be stale (another
// instance, or a mark written alone, moved the saga on): its update then
// fails its compare-and-set, and the input reads the store. An input a
// kept record says to ignore is applied again to the stored one before it
// is ignored: on a stale record a report of a step sent since looks
// unknown.
type recent struct {
	mu   sync.Mutex
	recs map[string]sagastore.Record
}

// get returns saga id's record as last stored here, if kept.
func (r *recent) get(id string) (sagastore.Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.recs[id]
	return rec, ok
}

// put keeps rec, just stored, unless its saga has ended (its next input, if
// any, is late or redelivered); if recentSize are kept, one goes.
func (r *recent) put(rec sagastore.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := rec.Saga.ID
	if rec.Saga.State.Terminal() {
		delete(r.recs, id)
		return
	}
	if r.recs == nil {
		r.recs = map[string]sagastore.Record{}
	}
	if kept, ok := r.recs[id]; ok {
		if kept.Revision > rec.Revision {
			return // two inputs' changes, put in the other order
		}
	} else if len(r.recs) >= recentSize {
		for other := range r.recs { // any one: a saga kept long waits long
			delete(r.recs, other)
			break
		}
	}
	r.recs[id] = rec
}

// forget drops saga id's record: it is, or may be, stale.
func (r *recent) forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.recs, id)
}
