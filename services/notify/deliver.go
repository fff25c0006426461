package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
)

// Channel delivers notices somewhere people read them.
//
// Deliver is called at most once per notice after it has succeeded (the
// service records each success), but may be called again after an error
// or after a crash between delivering and recording. So, as
// notifytest.Run checks of every implementation:
//   - delivering a notice twice is safe, and the receiver can tell a
//     repeat: the channel passes n.ID on with every delivery;
//   - nil means delivered: a cancelled ctx (the instance shutting down)
//     returns an error, so the notice is not recorded as sent;
//   - Name is not empty and never changes.
//
// An error is retried with back-off; one wrapping consumer.ErrPermanent (a
// receiver that refuses the notice for good) is dead-lettered at once, for
// that channel alone.
type Channel interface {
	// Name identifies the channel in records and metrics; keep it stable.
	Name() string
	Deliver(ctx context.Context, n events.Notice) error
}

// deliver hands a notice to every channel its routes name that has not had
// it yet. Channels that fail do not hold up the others; the notice comes
// back for them only, after the back-off of its delivery. A channel that
// refuses the notice for good, or still fails on the last delivery, gets a
// dead letter of its own (with its name) and is not tried again.
func (s *Service) deliver(ctx context.Context, d *consumer.Delivery) error {
	var n events.Notice
	if err := events.Open(d.Event(), events.TypeNotice, &n); err != nil {
		return err
	}
	n.ID, n.Time = d.Event().ID, d.Event().Time
	log := s.log.With("saga", n.Saga, "notice", n.ID)
	routed := s.cfg.Routes.Channels(n, s.channelNames())
	last := d.NumDelivered() >= uint64(s.cfg.Consumer.WithDefaults().MaxDeliver)
	var retry []error
	for _, ch := range s.cfg.Channels {
		name := ch.Name()
		if !slices.Contains(routed, name) {
			continue
		}
		key := doneKey(n.ID, name)
		_, err := s.done.Get(ctx, key)
		switch {
		case err == nil:
			s.sent.WithLabelValues(name, ResultDuplicate).Inc()
			continue
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			retry = append(retry, fmt.Errorf("look up delivery of %s to %s: %w", n.ID, name, err))
			continue
		}
		err = ch.Deliver(ctx, n)
		if err == nil {
			s.sent.WithLabelValues(name, ResultDelivered).Inc()
			if err := s.record(ctx, key, "delivered"); err != nil {
				// Delivered but not recorded: a redelivery would deliver again.
				retry = append(retry, fmt.Errorf("record delivery of %s to %s: %w", n.ID, name, err))
			}
			continue
		}
		s.sent.WithLabelValues(name, ResultFailed).Inc()
		log.Warn("delivery failed", "channel", name, "delivery", d.NumDelivered(), "err", err)
		reason := consumer.ReasonGaveUp
		switch {
		case ctx.Err() != nil:
			// Shutting down: not the channel's fault; the next instance tries.
			retry = append(retry, fmt.Errorf("deliver %s to %s: %w", n.ID, name, err))
			continue
		case errors.Is(err, consumer.ErrPermanent):
			reason = consumer.ReasonRejected
		case !last:
			retry = append(retry, fmt.Errorf("deliver %s to %s: %w", n.ID, name, err))
			continue
		}
		if err := s.deadLetter(ctx, d, n, name, reason, err); err != nil {
			retry = append(retry, err)
			continue
		}
		log.Error("notice dead-lettered for a channel", "channel", name, "reason", reason, "deliveries", d.NumDelivered())
	}
	if len(retry) == 0 {
		return nil
	}
	return consumer.RetryAfter(errors.Join(retry...), s.cfg.Retry.Delay(d.NumDelivered()))
}

// record writes the record of a notice's delivery to a channel, what says how
// it ended: delivered, or dead-lettered.
func (s *Service) record(ctx context.Context, key, what string) error {
	stamp := []byte(what + " " + time.Now().UTC().Format(time.RFC3339Nano))
	if _, err := s.done.Create(ctx, key, stamp); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return err
	}
	return nil
}

// deadLetter publishes the dead letter of a notice for one channel, counts
// it and records it, so no redelivery tries that channel again. Its id is
// derived from the notice and the channel: published twice, it is one.
func (s *Service) deadLetter(ctx context.Context, d *consumer.Delivery, n events.Notice, channel, reason string, cause error) error {
	data := d.Data()
	dl := events.DeadLetter{Stream: events.StreamNotify, Consumer: DeliverConsumer, Subject: d.Subject(),
		Sequence: d.Sequence(), Deliveries: d.NumDelivered(), Reason: reason, Error: cause.Error(),
		Headers: d.Header(), Payload: data[:min(len(data), maxDeadPayload)], Truncated: len(data) > maxDeadPayload,
		Channel: channel}
	env, err := events.New("dlq/notify/"+WebhookID(n.ID, channel), events.TypeDeadLetter, "upshift/"+s.cfg.Instance, n.Saga, 0, time.Now(), dl)
	if err != nil {
		return fmt.Errorf("dead-letter %s for %s: %w", n.ID, channel, err)
	}
	if err := bus.Publish(ctx, s.js, events.DeadLetterSubject(events.StreamNotify, DeliverConsumer), env); err != nil {
		return fmt.Errorf("dead-letter %s for %s: %w", n.ID, channel, err)
	}
	s.sent.WithLabelValues(channel, ResultDeadLettered).Inc()
	if err := s.record(ctx, doneKey(n.ID, channel), "dead-lettered"); err != nil {
		// Dead-lettered but not recorded: a redelivery may try once more.
		s.log.Warn("cannot record a dead letter", "notice", n.ID, "channel", channel, "err", err)
	}
	return nil
}

// maxDeadPayload bounds the copy of a notice kept in a dead letter, as the
// consumer runner's own.
const maxDeadPayload = 64 << 10

// maxKey bounds a record's key; a longer one is replaced by its digest, as
// the key travels in a subject.
const maxKey = 256

// doneKey is the record of one notice's delivery to one channel. KV keys
// allow only [-/_=.a-zA-Z0-9] and no empty token, so anything else in the
// id or the name, '.' and '=' included, is written as =XX: distinct ids
// stay distinct keys.
func doneKey(id, channel string) string {
	key := "notify." + escape(id) + "." + escape(channel)
	if len(key) <= maxKey {
		return key
	}
	sum := sha256.Sum256([]byte(id + "\x00" + channel))
	return "notify.sha256-" + hex.EncodeToString(sum[:])
}

func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '/':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	return b.String()
}

// logChannel writes each notice as one log line.
type logChannel struct{ log *slog.Logger }

// NewLogChannel returns a channel that logs each notice, at a level that
// follows its severity.
func NewLogChannel(log *slog.Logger) Channel { return logChannel{log: log} }

// logChannelName is the log channel's name, built in.
const logChannelName = "log"

func (logChannel) Name() string { return logChannelName }

func (c logChannel) Deliver(ctx context.Context, n events.Notice) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("log notice %s: %w", n.ID, err)
	}
	level := slog.LevelInfo
	switch n.Severity {
	case SeverityCritical:
		level = slog.LevelError
	case SeverityWarning, SeverityAction:
		level = slog.LevelWarn
	}
	c.log.Log(ctx, level, "notice", "id", n.ID, "team", n.Team, "saga", n.Saga, "kind", n.Kind,
		"severity", n.Severity, "summary", n.Summary)
	return nil
}
