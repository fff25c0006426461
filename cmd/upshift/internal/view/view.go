// Package view renders upshift's events and sagas for a terminal: one line
// per event as a saga runs, and a saga's status with its steps.
package view

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
)

// Printer writes one line per event, labelling each saga by its name (once
// it has seen the saga's request) or the tail of its id.
type Printer struct {
	mu     sync.Mutex
	w      io.Writer
	labels map[string]string
}

// NewPrinter returns a printer writing to w.
func NewPrinter(w io.Writer) *Printer { return &Printer{w: w, labels: map[string]string{}} }

// Print writes the line for an encoded event. What it cannot read (junk
// that anyone allowed to publish on the subject put there) is shown as
// unreadable, in its place, and the events after it are read as usual.
func (p *Printer) Print(data []byte) {
	env, err := events.Decode(data)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		fmt.Fprintf(p.w, "%s  %-22s    unreadable event (%d bytes): %v\n", time.Now().Format("15:04:05.000"), "?", len(data), err)
		return
	}
	line, err := p.line(env)
	if err != nil {
		line = fmt.Sprintf("   unreadable event %s (%s): %v", env.ID, env.Type, err)
	}
	if line != "" {
		first, more, _ := strings.Cut(line, "\n")
		fmt.Fprintf(p.w, "%s  %-22s %s\n", env.Time.Local().Format("15:04:05.000"), p.label(env.Saga), first)
		for l := range strings.Lines(more) {
			fmt.Fprintf(p.w, "%12s  %-22s %s\n", "", "", strings.TrimSuffix(l, "\n"))
		}
	}
}

func (p *Printer) label(id string) string {
	if l, ok := p.labels[id]; ok {
		return l
	}
	return Short(id)
}

// Short is the tail of an id: the random part of a UUIDv7.
func Short(id string) string {
	if len(id) > 8 {
		return id[len(id)-8:]
	}
	return id
}

func (p *Printer) line(env events.Envelope) (string, error) {
	switch env.Type {
	case events.TypeStep:
		var r events.StepResult
		if err := json.Unmarshal(env.Data, &r); err != nil {
			return "", err
		}
		return StepLine(r) + checkLines(r), nil
	case events.TypeSaga:
		var e events.SagaEvent
		if err := json.Unmarshal(env.Data, &e); err != nil {
			return "", err
		}
		if e.Kind == string(saga.StateRequested) && e.Name != "" {
			p.labels[e.Saga] = e.Name + " " + Short(e.Saga)
		}
		return SagaLine(e), nil
	case events.TypeNotice:
		var n events.Notice
		if err := json.Unmarshal(env.Data, &n); err != nil {
			return "", err
		}
		if n.Severity == "info" {
			return "", nil // progress is already on screen
		}
		return fmt.Sprintf("   notice to %s [%s]: %s", n.Team, n.Severity, n.Summary), nil
	}
	return "", nil
}

// StepLine describes a phase service's report.
func StepLine(r events.StepResult) string {
	what := fmt.Sprintf("   %-8s %-8s %-10s", r.Phase, r.Action, r.Target)
	switch r.Status {
	case events.StatusStarted:
		return what + " started"
	case events.StatusProgress:
		return what + " … " + r.Message
	case events.StatusSucceeded:
		return what + " succeeded" + took(r)
	case events.StatusFailed:
		// The reason code, unless the error already opens with it: a
		// service may say it in both ("start_failed: start_failed: ...").
		reason := r.Error
		if r.Reason != "" && !strings.HasPrefix(r.Error, r.Reason) {
			reason = r.Reason + ": " + r.Error
		}
		return what + " FAILED" + took(r) + ": " + reason
	}
	return what + " " + string(r.Status)
}

// checkLines are the checks of a finished precheck or verification (each
// probe's check, each analysis measurement), one per line, to be printed
// under its step's line: what was looked at, as it happens. Other phases'
// reports (hook output) stay in `upshift status`.
func checkLines(r events.StepResult) string {
	if (r.Phase != events.Precheck && r.Phase != events.Verify) || (r.Status != events.StatusSucceeded && r.Status != events.StatusFailed) {
		return ""
	}
	var b strings.Builder
	for _, l := range r.Report {
		mark := map[events.CheckStatus]string{events.CheckPass: "ok", events.CheckWarn: "WARN", events.CheckFail: "FAIL"}[l.LineStatus()]
		s := fmt.Sprintf("      %-4s %-24s %s", mark, l.Name, l.Value)
		if l.Threshold != "" {
			s += " (" + l.Threshold + ")"
		}
		if l.LineStatus() != events.CheckPass && l.Detail != "" {
			s += ": " + oneLine(l.Detail)
		}
		b.WriteString("\n" + strings.TrimRight(s, " "))
	}
	return b.String()
}

func took(r events.StepResult) string {
	if r.StartedAt.IsZero() || r.FinishedAt.IsZero() {
		return ""
	}
	return fmt.Sprintf(" in %s", r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond))
}

// SagaLine describes a coordinator's event.
func SagaLine(e events.SagaEvent) string {
	switch e.Kind {
	case string(saga.StateRequested):
		return "requested: " + e.Reason
	case events.KindStepFailed:
		return "!  " + e.Reason
	case events.KindApproved:
		s := "approved by " + e.Actor
		if e.Comment != "" {
			s += ": " + e.Comment
		}
		return s
	case events.KindConfirmed:
		s := e.Role + " confirmed by " + e.Actor
		if e.Comment != "" {
			s += ": " + e.Comment
		}
		return s + " (" + e.Reason + ")"
	case events.KindAnnouncement:
		return "announced to " + strings.Join(e.Audience, ", ") + ": " + e.Reason
	case events.KindIgnored:
		return "   (" + e.Reason + ")"
	case events.KindInvalid:
		return "REFUSED: " + e.Reason
	case string(saga.StateDeploying), string(saga.StateVerifying):
		return fmt.Sprintf("== %s batch %d/%d", strings.ReplaceAll(e.Kind, "_", " "), e.Batch+1, e.Batches)
	case string(saga.StateWatching):
		return "== watching: " + strings.TrimPrefix(e.Reason, "every target watched ")
	}
	s := "== " + strings.ReplaceAll(e.Kind, "_", " ")
	if saga.State(e.Kind).Terminal() {
		s = "=> " + strings.ToUpper(strings.ReplaceAll(e.Kind, "_", " "))
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Final reports whether a saga event ends the saga (or refuses it).
func Final(e events.SagaEvent) bool {
	return e.Kind == events.KindInvalid || (e.Kind == e.State && saga.State(e.State).Terminal())
}

// Watch reads a saga's events from the start, hands each to print (nil:
// none) and returns the event that ends the saga. It follows as long as the
// saga lives, however quiet, across reconnections; only ctx or a closed
// connection ends it early.
func Watch(ctx context.Context, js jetstream.JetStream, id string, print func([]byte)) (events.SagaEvent, error) {
	c, err := js.OrderedConsumer(ctx, events.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.SagaEventsFilter(id)}})
	if err != nil {
		return events.SagaEvent{}, fmt.Errorf("watch %s: %w", id, err)
	}
	for {
		m, err := c.Next(jetstream.FetchContext(ctx))
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return events.SagaEvent{}, fmt.Errorf("watch %s: %w", id, ctx.Err())
		case errors.Is(err, nats.ErrConnectionClosed):
			return events.SagaEvent{}, fmt.Errorf("watch %s: %w", id, err)
		case errors.Is(err, nats.ErrTimeout):
			// A fetch that waited in vain: a quiet phase may last an hour.
			continue
		default:
			// Most often the connection, while it reconnects: the ordered
			// consumer starts again after the last message it handed out.
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		if print != nil {
			print(m.Data())
		}
		env, err := events.Decode(m.Data())
		if err != nil || env.Type != events.TypeSaga {
			continue
		}
		var e events.SagaEvent
		if json.Unmarshal(env.Data, &e) == nil && Final(e) {
			return e, nil
		}
	}
}
