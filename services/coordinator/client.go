package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// Client calls the coordinator's NATS API.
type Client struct {
	nc *nats.Conn
}

// NewClient returns a client over nc.
func NewClient(nc *nats.Conn) *Client { return &Client{nc: nc} }

// APIError is an error answered by the API, with its code.
type APIError struct {
	Code    string
	Message string
}

func (e *APIError) Error() string { return e.Message + " (" + e.Code + ")" }

// Is matches the API's sentinel errors by code, so errors.Is works across
// the wire.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.Code == "400"
	case sagastore.ErrNotFound:
		return e.Code == "404"
	case ErrTooLate:
		return e.Code == "409"
	}
	return false
}

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
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		return &APIError{Code: code, Message: msg.Header.Get(micro.ErrorHeader)}
	}
	if err := json.Unmarshal(msg.Data, out); err != nil {
		return fmt.Errorf("%s: decode reply: %w", subject, err)
	}
	return nil
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
