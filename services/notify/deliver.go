package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
// receiver that refuses the notice for good) is dead-lettered at once.
type Channel interface {
	// Name identifies the channel in records and metrics; keep it stable.
	Name() string
	Deliver(ctx context.Context, n events.Notice) error
}

// deliver hands a notice to every channel that has not had it yet. Channels
// that fail do not hold up the others; the notice comes back for them only.
func (s *Service) deliver(ctx context.Context, d *consumer.Delivery) error {
	var n events.Notice
	if err := events.Open(d.Event(), events.TypeNotice, &n); err != nil {
		return err
	}
	n.ID = d.Event().ID
	log := s.log.With("saga", n.Saga, "notice", d.Event().ID)
	var errs []error
	for _, ch := range s.cfg.Channels {
		name := ch.Name()
		key := doneKey(d.Event().ID, name)
		_, err := s.done.Get(ctx, key)
		switch {
		case err == nil:
			s.sent.WithLabelValues(name, ResultDuplicate).Inc()
			continue
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			errs = append(errs, fmt.Errorf("look up delivery of %s to %s: %w", d.Event().ID, name, err))
			continue
		}
		if err := ch.Deliver(ctx, n); err != nil {
			s.sent.WithLabelValues(name, ResultFailed).Inc()
			log.Warn("delivery failed", "channel", name, "delivery", d.NumDelivered(), "err", err)
			errs = append(errs, fmt.Errorf("deliver %s to %s: %w", d.Event().ID, name, err))
			continue
		}
		s.sent.WithLabelValues(name, ResultDelivered).Inc()
		stamp := []byte(time.Now().UTC().Format(time.RFC3339Nano))
		if _, err := s.done.Create(ctx, key, stamp); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			// Delivered but not recorded: a redelivery would deliver again.
			errs = append(errs, fmt.Errorf("record delivery of %s to %s: %w", d.Event().ID, name, err))
		}
	}
	return errors.Join(errs...)
}

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

func (logChannel) Name() string { return "log" }

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
