package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/upshift/upshift/pkg/events"
)

// ErrPermanent marks an error that no retry can fix.
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err so the message is dead-lettered at once.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// Handler processes one delivery. A nil error acks it; see the package doc
// for what an error does.
type Handler func(ctx context.Context, d *Delivery) error

// Middleware wraps a handler with a policy of its own.
type Middleware func(Handler) Handler

// Chain wraps h in mws, the first outermost.
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// GiveUp is called once a message has failed its last delivery, before it is
// dead-lettered; a phase service uses it to report the step failed.
type GiveUp func(ctx context.Context, d *Delivery, err error)

// Delivery is one delivery of a message: facts a handler may read but not
// change, and no way to settle the message, which is the pull loop's alone.
// Middleware of this package fills in the decoded event and the logger on
// the way in.
type Delivery struct {
	subject   string
	header    nats.Header
	data      []byte
	sequence  uint64
	delivered uint64
	pending   uint64

	event events.Envelope
	log   *slog.Logger
	// settled are told the result once the loop has settled the message.
	settled []func(result string)
}

// Subject the message was published to.
func (d *Delivery) Subject() string { return d.subject }

// Sequence is the message's sequence in its stream.
func (d *Delivery) Sequence() uint64 { return d.sequence }

// NumDelivered counts this delivery: 1 the first time.
func (d *Delivery) NumDelivered() uint64 { return d.delivered }

// NumPending is how many messages for the consumer were still to be
// delivered when this one was.
func (d *Delivery) NumPending() uint64 { return d.pending }

// Header returns a copy of the message's headers.
func (d *Delivery) Header() nats.Header {
	h := make(nats.Header, len(d.header))
	for k, v := range d.header {
		h[k] = append([]string(nil), v...)
	}
	return h
}

// Data is the message as published, shared with its dead letter: read it,
// do not change it.
func (d *Delivery) Data() []byte { return d.data }

// Event is the decoded CloudEvent; zero in a pipeline without Decode.
func (d *Delivery) Event() events.Envelope { return d.event }

// Log is the runner's logger with the delivery's subject, sequence and count,
// and its saga id once LogSaga has run.
func (d *Delivery) Log() *slog.Logger { return d.log }

// afterSettle has f told how the message was settled, once it is.
func (d *Delivery) afterSettle(f func(result string)) { d.settled = append(d.settled, f) }
