package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

func checkID(id string) error {
	if !api.ValidID(id) {
		return fmt.Errorf("%w: %q is not a saga id", api.ErrBadRequest, id)
	}
	return nil
}

// Get returns one saga.
func (c *Coordinator) Get(ctx context.Context, id string) (api.View, error) {
	if err := checkID(id); err != nil {
		return api.View{}, err
	}
	r, err := c.store.Load(ctx, id)
	if err != nil {
		return api.View{}, err
	}
	return api.View{Saga: r.Saga, Revision: r.Revision, Pending: len(r.Pending)}, nil
}

// List lists sagas.
func (c *Coordinator) List(ctx context.Context, f sagastore.Filter) (api.ListReply, error) {
	sums, err := c.store.List(ctx, f)
	ids, err := sagastore.Skipped(err)
	if err != nil {
		return api.ListReply{}, err
	}
	if sums == nil {
		sums = []sagastore.Summary{}
	}
	return api.ListReply{Sagas: sums, Unreadable: ids}, nil
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
func (c *Coordinator) Decide(ctx context.Context, req api.ControlRequest) (api.ControlReply, error) {
	if req.Actor == "" {
		return api.ControlReply{}, fmt.Errorf("%w: actor is required", api.ErrBadRequest)
	}
	if err := checkID(req.ID); err != nil {
		return api.ControlReply{}, err
	}
	kind, ok := controlInput[req.Op]
	if !ok {
		return api.ControlReply{}, fmt.Errorf("%w: op %q: approve, reject, cancel or confirm", api.ErrBadRequest, req.Op)
	}
	if err := checkRole(req); err != nil {
		return api.ControlReply{}, err
	}
	r, err := c.store.Load(ctx, req.ID)
	if err != nil {
		return api.ControlReply{}, err
	}
	if err := checkConfirm(r.Saga, req); err != nil {
		return api.ControlReply{}, err
	}
	// Try it on the current state: an operator is told at once if it is
	// too late, rather than finding an "ignored" in the log.
	if _, eff := saga.Apply(r.Saga, saga.Input{Kind: kind, At: c.now(), Actor: req.Actor, Role: req.Role}); eff.Ignored != "" {
		return api.ControlReply{}, fmt.Errorf("%w: %s", api.ErrTooLate, eff.Ignored)
	}
	ctl := events.Control{ID: uuid.NewString(), Saga: req.ID, Op: req.Op, Actor: req.Actor, Comment: req.Comment, Role: req.Role}
	env, err := events.New(ctl.ID, events.TypeControl, c.engine.source, req.ID, 0, c.now(), ctl)
	if err != nil {
		return api.ControlReply{}, err
	}
	if err := bus.Publish(ctx, c.js, events.ControlSubject(req.ID, req.Op), env); err != nil {
		return api.ControlReply{}, err
	}
	return api.ControlReply{Accepted: true, Control: ctl.ID, State: string(r.Saga.State)}, nil
}

// serveAPI registers the NATS micro service.
func (c *Coordinator) serveAPI(nc *nats.Conn) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name: "upshift-coordinator", Version: "1.0.0", QueueGroup: "upshift-coordinator",
		Description: "saga status, history, operators' decisions and the registry of targets",
	})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	endpoints := []struct {
		name, subject string
		fn            func(ctx context.Context, data []byte) (any, error)
	}{
		{"get", api.SubjectGet, func(ctx context.Context, b []byte) (any, error) {
			var r api.IDRequest
			if err := decode(b, &r); err != nil {
				return nil, err
			}
			return c.Get(ctx, r.ID)
		}},
		{"list", api.SubjectList, func(ctx context.Context, b []byte) (any, error) {
			var f sagastore.Filter
			if err := decode(b, &f); err != nil {
				return nil, err
			}
			return c.List(ctx, f)
		}},
		{"history", api.SubjectHistory, func(ctx context.Context, b []byte) (any, error) {
			var r api.IDRequest
			if err := decode(b, &r); err != nil {
				return nil, err
			}
			return c.History(ctx, r.ID)
		}},
		{"control", api.SubjectControl, func(ctx context.Context, b []byte) (any, error) {
			var r api.ControlRequest
			if err := decode(b, &r); err != nil {
				return nil, err
			}
			return c.Decide(ctx, r)
		}},
		{"targets", api.SubjectTargets, func(ctx context.Context, b []byte) (any, error) {
			var r api.TargetsRequest
			if err := decode(b, &r); err != nil {
				return nil, err
			}
			return c.Targets(ctx, r.Selector)
		}},
	}
	for _, ep := range endpoints {
		handler := micro.HandlerFunc(func(req micro.Request) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := ep.fn(ctx, req.Data())
			if err != nil {
				c.fail(ctx, req, ep.name, err)
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
		return fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	return nil
}

// fail answers an error with its code. The text of an internal error may
// name hosts, buckets, tables or connections, so the caller is told only a
// reference to the log line that holds it, as the HTTP API tells nothing.
func (c *Coordinator) fail(ctx context.Context, req micro.Request, endpoint string, err error) {
	code, msg := api.Code(err), err.Error()
	if code == http.StatusInternalServerError {
		ref := uuid.NewString()
		// Every request but a listing names its saga; the log line should too.
		var named api.IDRequest
		_ = json.Unmarshal(req.Data(), &named)
		c.log.ErrorContext(ctx, "api request failed", "endpoint", endpoint, "saga", named.ID, "ref", ref, "err", err)
		msg = api.InternalError + ", ref " + ref
	}
	_ = req.Error(strconv.Itoa(code), msg, nil)
}

// checkRole checks that a confirmation, and only a confirmation, names a
// role.
func checkRole(req api.ControlRequest) error {
	switch {
	case req.Op == events.OpConfirm && req.Role == "":
		return fmt.Errorf("%w: a confirmation names its role (--role dba)", api.ErrBadRequest)
	case req.Op != events.OpConfirm && req.Role != "":
		return fmt.Errorf("%w: only a confirmation names a role, not %s", api.ErrBadRequest, req.Op)
	}
	return nil
}

// checkConfirm refuses a confirmation of a role the saga does not ask for
// as a bad request, before Decide tries it: a typo is not "too late".
func checkConfirm(s saga.Saga, req api.ControlRequest) error {
	roles := s.Options.Confirm.Roles
	switch {
	case req.Op != events.OpConfirm || slices.Contains(roles, req.Role):
		return nil
	case len(roles) == 0:
		return fmt.Errorf("%w: saga %s asks for no confirmation", api.ErrBadRequest, s.ID)
	}
	return fmt.Errorf("%w: role %q: saga %s asks %s to confirm", api.ErrBadRequest, req.Role, s.ID, strings.Join(roles, ", "))
}
