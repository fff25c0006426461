package view

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/events"
)

// Notices follows a team's notices on upshift.notify.<team>.> with an
// ordered consumer, which reads without acknowledging and leaves nothing on
// the server: since > 0 starts that long ago, 0 with the notices published
// from now on. Each is handed to print until ctx ends; a message that is
// not a notice is skipped.
func Notices(ctx context.Context, js jetstream.JetStream, team string, since time.Duration, print func(events.Notice)) error {
	if err := events.CheckToken(team); err != nil {
		return fmt.Errorf("team %q: %w", team, err)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{"upshift.notify." + team + ".>"}}
	if since > 0 {
		start := time.Now().Add(-since)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	} else {
		// "From now on" is a sequence, not DeliverNew: an ordered consumer
		// made again before it delivered anything (a stall, a reconnect)
		// would otherwise start from its own "now" and skip what came in
		// between.
		s, err := js.Stream(ctx, events.StreamNotify)
		if err != nil {
			return fmt.Errorf("notices of %s: %w", team, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			return fmt.Errorf("notices of %s: %w", team, err)
		}
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, info.State.LastSeq+1
	}
	c, err := js.OrderedConsumer(ctx, events.StreamNotify, cfg)
	if err != nil {
		return fmt.Errorf("notices of %s: %w", team, err)
	}
	for {
		m, err := c.Next(jetstream.FetchContext(ctx))
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, nats.ErrConnectionClosed):
			return fmt.Errorf("notices of %s: %w", team, err)
		case errors.Is(err, nats.ErrTimeout):
			continue
		default:
			// Reconnecting: the ordered consumer resumes after the last one.
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		env, err := events.Decode(m.Data())
		if err != nil {
			continue
		}
		var n events.Notice
		if events.Open(env, events.TypeNotice, &n) != nil {
			continue
		}
		n.ID, n.Time = env.ID, env.Time
		print(n)
	}
}

// NoticeLine is a notice on one line: when, how urgent, what, and the
// command that shows more.
func NoticeLine(w io.Writer, n events.Notice) {
	at := n.Time.Local().Format("2006-01-02 15:04:05")
	fmt.Fprintf(w, "%s  %-8s  %s  (upshift status %s)\n", at, n.Severity, oneLine(n.Summary), n.Saga)
}
