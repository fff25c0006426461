// Package bus publishes upshift's events to JetStream: every message carries
// its event id as Nats-Msg-Id, so a re-publish after a crash is dropped by
// the stream, and deadlines are published as scheduled messages.
package bus

import (
	"context"
	"fmt"
	"time"

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
// counts as sent.
func Send(ctx context.Context, js jetstream.JetStream, m Message) error {
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(m.ID)}
	if !m.At.IsZero() {
		opts = append(opts, jetstream.WithScheduleAt(m.At), jetstream.WithScheduleTarget(m.Target))
	}
	if _, err := js.Publish(ctx, m.Subject, m.Data, opts...); err != nil {
		return fmt.Errorf("publish %s to %s: %w", m.ID, m.Subject, err)
	}
	return nil
}

// Publish encodes and sends an envelope.
func Publish(ctx context.Context, js jetstream.JetStream, subject string, e events.Envelope) error {
	m, err := Encode(subject, e)
	if err != nil {
		return err
	}
	return Send(ctx, js, m)
}
