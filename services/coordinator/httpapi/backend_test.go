package httpapi_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/upshift/upshift/pkg/fleet"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/httpapi"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// backend is a Backend in memory: the HTTP layer's own seam, so that its
// routes, parameters, codes and logging are tested without a coordinator.
// It answers as *coordinator.Coordinator does: an unknown saga with
// sagastore.ErrNotFound, a decision on an ended saga with api.ErrTooLate.
// TestOverTheCoordinator holds the real one to the same answers.
type backend struct {
	mu      sync.Mutex
	sagas   map[string]api.View
	history map[string][]sagastore.Entry
	err     error                // if set, every call fails with it
	calls   int                  // calls made
	filters []sagastore.Filter   // of every listing
	decided []api.ControlRequest // every decision accepted
}

var _ httpapi.Backend = (*backend)(nil)

func newBackend(views ...api.View) *backend {
	b := &backend{sagas: map[string]api.View{}, history: map[string][]sagastore.Entry{}}
	for _, v := range views {
		b.sagas[v.Saga.ID] = v
	}
	return b
}

// called returns how many calls reached the backend.
func (b *backend) called() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

// listed returns the filters of the listings asked for.
func (b *backend) listed() []sagastore.Filter {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.filters)
}

// decisions returns the decisions accepted.
func (b *backend) decisions() []api.ControlRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.decided)
}

// enter counts a call and returns the saga named, or the error to answer.
func (b *backend) enter(id string) (api.View, error) {
	b.calls++
	if b.err != nil {
		return api.View{}, b.err
	}
	v, ok := b.sagas[id]
	if !ok && id != "" {
		return v, fmt.Errorf("load saga %s: %w", id, sagastore.ErrNotFound)
	}
	return v, nil
}

func (b *backend) Get(_ context.Context, id string) (api.View, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.enter(id)
}

func (b *backend) List(_ context.Context, f sagastore.Filter) (api.ListReply, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.enter(""); err != nil {
		return api.ListReply{}, err
	}
	b.filters = append(b.filters, f)
	out := api.ListReply{Sagas: []sagastore.Summary{}}
	for _, id := range slices.Sorted(maps.Keys(b.sagas)) {
		out.Sagas = append(out.Sagas, sagastore.Summarize(b.sagas[id].Saga))
	}
	return out, nil
}

func (b *backend) History(_ context.Context, id string) ([]sagastore.Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.enter(id); err != nil {
		return nil, err
	}
	return b.history[id], nil
}

func (b *backend) Decide(_ context.Context, req api.ControlRequest) (api.ControlReply, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, err := b.enter(req.ID)
	if err != nil {
		return api.ControlReply{}, err
	}
	if v.Saga.State.Terminal() {
		return api.ControlReply{}, fmt.Errorf("%w: saga is %s", api.ErrTooLate, v.Saga.State)
	}
	b.decided = append(b.decided, req)
	return api.ControlReply{Accepted: true, Control: fmt.Sprintf("control-%d", len(b.decided)), State: string(v.Saga.State)}, nil
}

// Targets: the registry is the coordinator's business; its route is tested
// on a real one (world_test.go).
func (b *backend) Targets(context.Context, string) (fleet.Listing, error) {
	return fleet.Listing{Entries: []fleet.Entry{}}, nil
}
