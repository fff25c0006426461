// Package bus publishes upshift's events to JetStream: every message carries
// its event id as Nats-Msg-Id, so a re-publish after a crash is dropped by
// the stream, and deadlines are published as scheduled messages.
package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/events"
)

// Message is an encoded event ready to send: what an outbox stores.
type Message struct {
	// ID is the Nats-Msg-Id: the event id.
	ID      string `json:"id"`
	Subject string `json:"subject"`
	Data    []byte `json:"data"`
	// At, when set, makes the message a schedule: JetStream delivers Data
	// on Target at that time.
	At     time.Time `json:"at,omitzero"`
	Target string    `json:"target,omitempty"`
}

// Encode prepares an envelope for subject.
func Encode(subject string, e events.Envelope) (Message, error) {
	b, err := events.Encode(e)
	if err != nil {
		return Message{}, err
	}
	return Message{ID: e.ID, Subject: subject, Data: b}, nil
}

// Schedule prepares an envelope to be delivered on target at a time. The
// scheduler works in whole seconds, so the time is rounded up: a deadline is
// never delivered early.
func Schedule(subject, target string, at time.Time, e events.Envelope) (Message, error) {
	m, err := Encode(subject, e)
	if err != nil {
		return m, err
	}
	ceil := at.Truncate(time.Second)
	if ceil.Before(at) {
		ceil = ceil.Add(time.Second)
	}
	m.At, m.Target = ceil.UTC(), target
	return m, nil
}

// Send publishes a message and waits for the stream's acknowledgement. A
// message the stream has already seen (same id within its duplicate window)
// counts as sent. A publish refused because another one with the same id is
// still being stored (JetStream's error 10158, on a replicated stream) is
// tried again after InProcessBackoff's delays: asked again, the stream stores
// it or answers that it is a duplicate.
func Send(ctx context.Context, js jetstream.JetStream, m Message) error {
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(m.ID)}
	if !m.At.IsZero() {
		opts = append(opts, jetstream.WithScheduleAt(m.At), jetstream.WithScheduleTarget(m.Target))
	}
	for try := 0; ; try++ {
		_, err := js.Publish(ctx, m.Subject, m.Data, opts...)
		if err == nil {
			return nil
		}
		if !InProcess(err) || try >= len(InProcessBackoff) {
			return fmt.Errorf("publish %s to %s: %w", m.ID, m.Subject, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("publish %s to %s: %w (then %w)", m.ID, m.Subject, err, ctx.Err())
		case <-time.After(InProcessBackoff[try]):
		}
	}
}

// SendAll publishes messages in order and waits for every acknowledgement,
// as Send does each, but without a round trip per message: every publish
// goes out before the first ack is awaited. One connection keeps the order
// of its publishes, so the streams store them in order. A message whose
// publish fails (or cannot be queued) is sent again with Send, so on an
// error the later ones of the same stream may already be stored before it;
// every message has its id, and sending the whole list again after an error
// stores only what is missing.
func SendAll(ctx context.Context, js jetstream.JetStream, msgs []Message) error {
	if len(msgs) == 1 {
		return Send(ctx, js, msgs[0])
	}
	acks := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		opts := []jetstream.PublishOpt{jetstream.WithMsgID(m.ID)}
		if !m.At.IsZero() {
			opts = append(opts, jetstream.WithScheduleAt(m.At), jetstream.WithScheduleTarget(m.Target))
		}
		ack, err := js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Data: m.Data, Header: nats.Header{}}, opts...)
		if err != nil {
			break // too many publishes pending, or no connection: the rest one by one
		}
		acks[i] = ack
	}
	// An ack that does not come (a publish lost while a stream changes its
	// leader) would hold the caller for ever: after AckWait, what is not
	// acknowledged yet is sent again, one at a time.
	late := time.NewTimer(AckWait)
	defer late.Stop()
	waiting := true
	for i, ack := range acks {
		switch {
		case ack == nil:
		case waiting:
			select {
			case <-ack.Ok():
				continue
			case <-ack.Err():
			case <-late.C:
				waiting = false
			case <-ctx.Done():
				return fmt.Errorf("publish %s to %s: %w", msgs[i].ID, msgs[i].Subject, ctx.Err())
			}
		default:
			select {
			case <-ack.Ok():
				continue
			default:
			}
		}
		if err := Send(ctx, js, msgs[i]); err != nil {
			return err
		}
	}
	return nil
}

// AckWait bounds how long SendAll waits for the acks of a burst, as the
// client bounds a single publish by default.
var AckWait = 5 * time.Second

// ErrCodeDuplicateInProcess is JetStream's "duplicate message id is in
// process": a publish with the id of another that a replicated stream has
// proposed but not yet stored.
const ErrCodeDuplicateInProcess jetstream.ErrorCode = 10158

// InProcessBackoff are the delays before each new try of a publish refused
// with ErrCodeDuplicateInProcess: about 3 s in all, the time a replicated
// stream takes to store a proposal on a loaded machine, and bounded so that
// a caller's own retry (a redelivery) takes over after that.
var InProcessBackoff = []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
	800 * time.Millisecond, 1600 * time.Millisecond}

// InProcess reports whether err is JetStream's ErrCodeDuplicateInProcess.
func InProcess(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == ErrCodeDuplicateInProcess
}

// Codes of JetStream errors that say it cannot answer for now.
const (
	errCodeClusterNotAvailable jetstream.ErrorCode = 10008 // "JetStream system temporarily unavailable"
	errCodeNotReady            jetstream.ErrorCode = 10163 // "expected last sequence per subject temporarily unavailable"
)

// Unanswered reports whether err says that JetStream did not answer, or
// answered that it cannot for now: no response from the stream (no leader,
// no stream bound to the subject), no responders, a timeout, JetStream not
// available (a server restarting, a cluster without a meta leader), or a
// publish still in process (ErrCodeDuplicateInProcess, after Send's own
// tries). The same call may succeed later, unchanged. A refusal (a bad
// request, a wrong sequence, a message too big) is not one: asking again
// gets the same answer.
func Unanswered(err error) bool {
	if err == nil {
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errCodeClusterNotAvailable, errCodeNotReady, ErrCodeDuplicateInProcess, jetstream.JSErrCodeJetStreamNotEnabled:
			return true
		}
	}
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded)
}

// Publish encodes and sends an envelope.
func Publish(ctx context.Context, js jetstream.JetStream, subject string, e events.Envelope) error {
	m, err := Encode(subject, e)
	if err != nil {
		return err
	}
	return Send(ctx, js, m)
}
