package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// onRequest handles the REQUESTS stream: new requests and operators'
// decisions.
func (c *Coordinator) onRequest(ctx context.Context, d *consumer.Delivery) error {
	switch d.Event().Type {
	case events.TypeRequest:
		return c.submit(ctx, d)
	case events.TypeControl:
		return c.control(ctx, d)
	}
	return fmt.Errorf("%w: %s on %s", events.ErrWrongType, d.Event().Type, d.Subject())
}

func (c *Coordinator) submit(ctx context.Context, d *consumer.Delivery) error {
	if err := events.Open(d.Event(), events.TypeRequest, new(json.RawMessage)); err != nil {
		return err
	}
	id := d.Event().ID
	if !api.ValidID(id) {
		return consumer.Permanent(fmt.Errorf("request id %q: letters, digits, '_' and '-', at most 64", id))
	}
	// A redelivered request whose saga exists: publish what it may still
	// have pending, before any check that could now answer otherwise (a
	// policy changed, a rehearsal grown old).
	if rec, err := c.store.Load(ctx, id); err == nil {
		c.log.Info("request already accepted", "saga", id)
		return c.engine.flush(ctx, rec, nil, true)
	} else if !errors.Is(err, sagastore.ErrNotFound) {
		return err
	}
	// Checked as `upshift validate` checks a file: every problem named,
	// unknown fields among them, so that nothing a client sends is
	// silently dropped.
	req, err := spec.Parse(d.Event().Data)
	if err != nil {
		return c.refuse(ctx, id, req, err)
	}
	// A team asks on its own subject, where NATS permissions let only it
	// publish: the team in the body must be that one, or any team could
	// ask on another's behalf.
	if want := events.RequestSubject(req.Metadata.Team); d.Subject() != want {
		return c.refuse(ctx, id, req, fmt.Errorf("%w: the request is team %q's but was published on %s: a team asks on %s only",
			ErrRefused, req.Metadata.Team, d.Subject(), want))
	}
	if missing, err := c.served(ctx, &req); err != nil {
		return err
	} else if len(missing) > 0 {
		return c.refuse(ctx, id, req, errors.New(strings.Join(missing, "; ")))
	}
	if sz, ok := c.store.(sagastore.Sized); ok && len(req.Spec.Targets) > sz.MaxTargets() {
		return c.refuse(ctx, id, req, fmt.Errorf("%w: %d targets: this coordinator's store takes sagas of at most %d; "+
			"a coordinator on the PostgreSQL store takes %d", ErrRefused, len(req.Spec.Targets), sz.MaxTargets(), spec.MaxTargets))
	}
	// Only the policy refuses; a store that fails to answer the gate is
	// an error like any other, and the request is tried again.
	if err := c.policy.admit(ctx, c.store, req, c.now()); errors.Is(err, ErrRefused) {
		return c.refuse(ctx, id, req, err)
	} else if err != nil {
		return err
	}
	now := c.now()
	s := saga.New(id, req, c.policy.options(req), now)
	return c.engine.create(ctx, s, saga.Input{Kind: saga.InputStart, At: now}, seenOf(d))
}

// refuse tells the submitter, on the saga's own subject, why no saga was
// started. The request itself stays in REQUESTS.
func (c *Coordinator) refuse(ctx context.Context, id string, req spec.Request, why error) error {
	c.log.Warn("request refused", "saga", id, "err", why)
	c.engine.metrics.sagas.WithLabelValues(events.KindInvalid).Inc()
	ev := events.SagaEvent{Saga: id, Kind: events.KindInvalid, State: events.KindInvalid, Reason: why.Error(),
		Name: req.Metadata.Name, Team: req.Metadata.Team, Teams: req.Spec.Notify, Environment: req.Metadata.Environment,
		Software: req.Spec.Software, From: req.Spec.From, To: req.Spec.To}
	env, err := events.New(id+"/"+events.KindInvalid, events.TypeSaga, c.engine.source, id, 0, c.now(), ev)
	if err != nil {
		return err
	}
	return bus.Publish(ctx, c.js, events.SagaSubject(id, events.KindInvalid), env)
}

var controlInput = map[events.ControlOp]saga.InputKind{
	events.OpApprove: saga.InputApprove, events.OpReject: saga.InputReject, events.OpCancel: saga.InputCancel,
	events.OpConfirm: saga.InputConfirm,
}

func (c *Coordinator) control(ctx context.Context, d *consumer.Delivery) error {
	var ctl events.Control
	if err := events.Open(d.Event(), events.TypeControl, &ctl); err != nil {
		return err
	}
	in := saga.Input{Kind: controlInput[ctl.Op], At: c.now(), Actor: ctl.Actor, Comment: ctl.Comment, Role: ctl.Role}
	return c.engine.handle(ctx, ctl.Saga, in, seenOf(d))
}

// onResult handles the phase services' reports.
func (c *Coordinator) onResult(ctx context.Context, d *consumer.Delivery) error {
	var r events.StepResult
	if err := events.Open(d.Event(), events.TypeStep, &r); err != nil {
		return err
	}
	in := saga.Input{Kind: saga.InputReport, At: c.now(), Sent: d.Event().Time, Result: &r}
	return c.engine.handle(ctx, r.Saga, in, seenOf(d))
}

// onTimer handles a deadline falling due. The scheduler may deliver it a
// little late, never early; a clock behind the scheduler's must not make it
// early either, hence the max.
func (c *Coordinator) onTimer(ctx context.Context, d *consumer.Delivery) error {
	var t events.Timer
	if err := events.Open(d.Event(), events.TypeTimer, &t); err != nil {
		return err
	}
	at := c.now()
	if at.Before(t.Due) {
		at = t.Due
	}
	return c.engine.handle(ctx, t.Saga, saga.Input{Kind: saga.InputTick, At: at}, seenOf(d))
}
