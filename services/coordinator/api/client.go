package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/fleet"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// Client calls the coordinator's NATS API, and submits requests.
type Client struct {
	nc *nats.Conn
}

// NewClient returns a client over nc.
func NewClient(nc *nats.Conn) *Client { return &Client{nc: nc} }

// Submit publishes a request to REQUESTS and returns the id of its saga.
// No coordinator need be running: the request waits in the stream, and the
// saga's events on EVENTS tell what came of it.
func (c *Client) Submit(ctx context.Context, r spec.Request) (string, error) {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return "", err
	}
	// Time-ordered, so that ids sort roughly as the requests were made.
	id := uuid.Must(uuid.NewV7()).String()
	env, err := events.New(id, events.TypeRequest, "upshift/cli", "", 0, time.Now(), r)
	if err != nil {
		return "", err
	}
	if err := bus.Publish(ctx, js, events.RequestSubject(r.Metadata.Team), env); err != nil {
		return "", fmt.Errorf("submit %s: %w", id, err)
	}
	return id, nil
}

// Get returns one saga.
func (c *Client) Get(ctx context.Context, id string) (View, error) {
	var v View
	return v, c.call(ctx, SubjectGet, IDRequest{ID: id}, &v)
}

// List lists sagas.
func (c *Client) List(ctx context.Context, f sagastore.Filter) (ListReply, error) {
	var out ListReply
	return out, c.call(ctx, SubjectList, f, &out)
}

// History returns a saga's audit log.
func (c *Client) History(ctx context.Context, id string) ([]sagastore.Entry, error) {
	var out []sagastore.Entry
	return out, c.call(ctx, SubjectHistory, IDRequest{ID: id}, &out)
}

// Decide sends an operator's decision.
func (c *Client) Decide(ctx context.Context, req ControlRequest) (ControlReply, error) {
	var out ControlReply
	return out, c.call(ctx, SubjectControl, req, &out)
}

// Targets lists the registry of targets, those selector chooses if it is
// set.
func (c *Client) Targets(ctx context.Context, selector string) (fleet.Listing, error) {
	var out fleet.Listing
	return out, c.call(ctx, SubjectTargets, TargetsRequest{Selector: selector}, &out)
}

// call sends a request and decodes the reply into out; an error answered
// by the coordinator is an *Error.
func (c *Client) call(ctx context.Context, subject string, req, out any) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	msg, err := c.nc.RequestWithContext(ctx, subject, b)
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("no coordinator is answering on %s: is one running?", subject)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	if h := msg.Header.Get(micro.ErrorCodeHeader); h != "" {
		// A code that is not a number is 0, which matches no error.
		code, _ := strconv.Atoi(h)
		return &Error{Code: code, Message: msg.Header.Get(micro.ErrorHeader)}
	}
	if err := json.Unmarshal(msg.Data, out); err != nil {
		return fmt.Errorf("%s: decode reply: %w", subject, err)
	}
	return nil
}
