package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// API subjects, answered by every coordinator instance (one queue group).
// Requests and replies are JSON.
const (
	SubjectGet     = "upshift.api.sagas.get"     // {"id"} -> View
	SubjectList    = "upshift.api.sagas.list"    // sagastore.Filter -> []sagastore.Summary
	SubjectHistory = "upshift.api.sagas.history" // {"id"} -> []sagastore.Entry
	SubjectControl = "upshift.api.sagas.control" // ControlRequest -> ControlReply
)

// View is a saga as the API shows it.
type View struct {
	Saga     saga.Saga          `json:"saga"`
	Revision sagastore.Revision `json:"revision"`
	Pending  int                `json:"pendingMessages"`
}

// IDRequest names a saga.
type IDRequest struct {
	ID string `json:"id"`
}

// ControlRequest is an operator's decision.
type ControlRequest struct {
	ID      string           `json:"id"`
	Op      events.ControlOp `json:"op"`
	Actor   string           `json:"actor"`
	Comment string           `json:"comment,omitempty"`
}

// ControlReply says the decision was accepted for the saga; the saga acts
// on it asynchronously, and its events tell what came of it.
type ControlReply struct {
	Accepted bool   `json:"accepted"`
	Control  string `json:"control"` // the id of the published decision
	State    string `json:"state"`   // the saga's state when accepted
}

// API errors carry an HTTP-like code.
var (
	ErrBadRequest = errors.New("bad request")
	ErrNoSaga     = sagastore.ErrNotFound
	ErrTooLate    = errors.New("decision no longer possible")
)

func checkID(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: %q is not a saga id", ErrBadRequest, id)
	}
	return nil
}

// Get returns one saga.
func (c *Coordinator) Get(ctx context.Context, id string) (View, error) {
	if err := checkID(id); err != nil {
		return View{}, err
	}
	r, err := c.store.Load(ctx, id)
	if err != nil {
		return View{}, err
	}
	return View{Saga: r.Saga, Revision: r.Revision, Pending: len(r.Pending)}, nil
}

// ListReply is a listing: the sagas that pass the filter, newest first,
// and the ids of stored sagas skipped because they cannot be decoded (a
// KV store names them whatever the filter, as it cannot tell).
type ListReply struct {
	Sagas      []sagastore.Summary `json:"sagas"`
	Unreadable []string            `json:"unreadable,omitempty"`
}

// List lists sagas.
func (c *Coordinator) List(ctx context.Context, f sagastore.Filter) (ListReply, error) {
	sums, err := c.store.List(ctx, f)
	ids, err := sagastore.Skipped(err)
	if err != nil {
		return ListReply{}, err
	}
	if sums == nil {
		sums = []sagastore.Summary{}
	}
	return ListReply{Sagas: sums, Unreadable: ids}, nil
}

// History returns a saga's audit log.
func (c *Coordinator) History(ctx context.Context, id string) ([]sagastore.Entry, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	return c.store.History(ctx, id)
}

// Decide publishes an operator's decision on a saga to REQUESTS, after
// checking that it can still apply. The decision is durable once published:
// it is applied even if every coordinator restarts meanwhile.
func (c *Coordinator) Decide(ctx context.Context, req ControlRequest) (ControlReply, error) {
	if req.Actor == "" {
		return ControlReply{}, fmt.Errorf("%w: actor is required", ErrBadRequest)
	}
	if err := checkID(req.ID); err != nil {
		return ControlReply{}, err
	}
	kind, ok := controlInput[req.Op]
	if !ok {
		return ControlReply{}, fmt.Errorf("%w: op %q: approve, reject or cancel", ErrBadRequest, req.Op)
	}
	r, err := c.store.Load(ctx, req.ID)
	if err != nil {
		return ControlReply{}, err
	}
	// Try it on the current state: an operator is told at once if it is
	// too late, rather than finding an "ignored" in the log.
	if _, eff := saga.Apply(r.Saga, saga.Input{Kind: kind, At: c.now(), Actor: req.Actor}); eff.Ignored != "" {
		return ControlReply{}, fmt.Errorf("%w: %s", ErrTooLate, eff.Ignored)
	}
	ctl := events.Control{ID: uuid.NewString(), Saga: req.ID, Op: req.Op, Actor: req.Actor, Comment: req.Comment}
	env, err := events.New(ctl.ID, events.TypeControl, c.engine.source, req.ID, 0, c.now(), ctl)
	if err != nil {
		return ControlReply{}, err
	}
	if err := bus.Publish(ctx, c.js, events.ControlSubject(req.ID, req.Op), env); err != nil {
		return ControlReply{}, err
	}
	return ControlReply{Accepted: true, Control: ctl.ID, State: string(r.Saga.State)}, nil
}

// serveAPI registers the NATS micro service.
func (c *Coordinator) serveAPI(nc *nats.Conn) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name: "upshift-coordinator", Version: "1.0.0", QueueGroup: "upshift-coordinator",
		Description: "saga status, history and operators' decisions",
	})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	endpoints := []struct {
		name, subject string
		fn            func(ctx context.Context, data []byte) (any, error)
	}{
		{"get", SubjectGet, func(ctx context.Context, b []byte) (any, error) {
			var r IDRequest
			if err := decode(b, &r); err != nil {
				return nil, err
			}
			return c.Get(ctx, r.ID)
		}},
		{"list", SubjectList, func(ctx context.Context, b []byte) (any, error) {
			var f sagastore.Filter
			if err := decode(b, &f); err != nil {
				return nil, err
			}
			return c.List(ctx, f)
		}},
		{"history", SubjectHistory, func(ctx context.Context, b []byte) (any, error) {
			var r IDRequest
			if err := decode(b, &r); err != nil {
				return nil, err
			}
			return c.History(ctx, r.ID)
		}},
		{"control", SubjectControl, func(ctx context.Context, b []byte) (any, error) {
			var r ControlRequest
			if err := decode(b, &r); err != nil {
				return nil, err
			}
			return c.Decide(ctx, r)
		}},
	}
	for _, ep := range endpoints {
		handler := micro.HandlerFunc(func(req micro.Request) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := ep.fn(ctx, req.Data())
			if err != nil {
				code, desc := apiCode(err), err.Error()
				_ = req.Error(code, desc, nil)
				return
			}
			_ = req.RespondJSON(out)
		})
		if err := svc.AddEndpoint(ep.name, handler, micro.WithEndpointSubject(ep.subject)); err != nil {
			return nil, fmt.Errorf("api %s: %w", ep.name, err)
		}
	}
	return svc, nil
}

func decode(b []byte, v any) error {
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return nil
}

// apiCode maps an error to the code a client sees.
func apiCode(err error) string {
	switch {
	case errors.Is(err, ErrBadRequest):
		return "400"
	case errors.Is(err, sagastore.ErrNotFound):
		return "404"
	case errors.Is(err, ErrTooLate):
		return "409"
	}
	return "500"
}
