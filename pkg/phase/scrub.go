package phase

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/upshift/upshift/pkg/events"
)

// Scrub removes the secrets an instance holds (its targets' declared
// values) from text before it leaves the host. The framework applies it to
// everything an executor says, which is where a hook's output or a
// server's error message may quote a secret: the outcome's error, output
// and report, progress messages, and errors it returns. *targets.Registry's
// Scrub is one.
type Scrub func(string) string

func (s Scrub) or() Scrub {
	if s == nil {
		return func(v string) string { return v }
	}
	return s
}

// outcome scrubs every text of out.
func (s Scrub) outcome(out Outcome) Outcome {
	out.Error = s(out.Error)
	if out.Output != nil {
		o := make(map[string]string, len(out.Output))
		for k, v := range out.Output {
			o[s(k)] = s(v)
		}
		out.Output = o
	}
	if out.Report != nil {
		r := make([]events.ReportLine, len(out.Report))
		for i, l := range out.Report {
			l.Name, l.Detail, l.Value, l.Threshold = s(l.Name), s(l.Detail), s(l.Value), s(l.Threshold)
			r[i] = l
		}
		out.Report = r
	}
	return out
}

// scrubbedError is an error whose text is scrubbed and whose chain is kept,
// so errors.Is still sees through it.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

func (s Scrub) error(err error) error {
	if err == nil {
		return nil
	}
	msg := s(err.Error())
	if msg == err.Error() {
		return err
	}
	return &scrubbedError{msg: msg, err: err}
}

// ScrubLogs wraps a log handler so that no line it writes holds a secret:
// the message and every attribute's text are scrubbed. A phase service's
// Program logs through it, executors included.
func ScrubLogs(h slog.Handler, scrub Scrub) slog.Handler {
	if scrub == nil {
		return h
	}
	return scrubHandler{next: h, scrub: scrub}
}

type scrubHandler struct {
	next  slog.Handler
	scrub Scrub
}

func (h scrubHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h scrubHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.scrub(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h scrubHandler) WithAttrs(as []slog.Attr) slog.Handler {
	scrubbed := make([]slog.Attr, len(as))
	for i, a := range as {
		scrubbed[i] = h.attr(a)
	}
	return scrubHandler{next: h.next.WithAttrs(scrubbed), scrub: h.scrub}
}

func (h scrubHandler) WithGroup(name string) slog.Handler {
	return scrubHandler{next: h.next.WithGroup(name), scrub: h.scrub}
}

// attr scrubs an attribute's text: strings, errors and anything else as
// it would print. A value with nothing to scrub is kept as it is.
func (h scrubHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.scrub(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, x := range g {
			out[i] = h.attr(x)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindAny:
		text := fmt.Sprint(v.Any())
		if err, ok := v.Any().(error); ok {
			text = err.Error()
		}
		if s := h.scrub(text); s != text {
			return slog.String(a.Key, s)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
