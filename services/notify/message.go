package notify

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"

	"github.com/upshift/upshift/pkg/events"
)

// Message is a notice written for people: what happened, to which software
// and where, what failed and why, what happens next and how to see more.
// Chat gets Short, mail gets Title, Text and HTML.
type Message struct {
	Title    string // one line: a mail's subject
	Severity string
	What     string // what happened
	Software string // and its versions
	Where    string // the environment
	Targets  string
	Why      string // what failed and why: the failing check or probe and its value
	Next     string // what happens next, and whether a human must act
	Command  string // the command that shows more
	Team     string
	Saga     string
}

// Compose writes n for people.
func Compose(n events.Notice) Message {
	ev := n.Event
	if ev.Saga == "" {
		ev.Saga, ev.Kind = n.Saga, n.Kind
	}
	m := Message{Severity: n.Severity, Team: n.Team, Saga: n.Saga, Command: "upshift status " + n.Saga,
		What: happened(ev), Software: software(ev), Where: ev.Environment, Why: because(ev), Next: next(ev)}
	if ev.DryRun {
		m.What += " (dry run)"
	}
	if showBatch(ev) {
		batch := ev.Batch
		if ev.Step != nil {
			batch = ev.Step.Batch
		}
		m.What += fmt.Sprintf(", batch %d of %d", batch+1, ev.Batches)
	}
	targets := n.Targets
	if ev.Step != nil && ev.Step.Target != "" && len(targets) == 0 {
		targets = []string{ev.Step.Target}
	}
	m.Targets = strings.Join(targets, ", ")
	if more := ev.TargetCount - len(targets); more > 0 && len(targets) > 0 {
		m.Targets += fmt.Sprintf(" and %d more", more)
	}
	if m.Why == "" && ev.Step != nil && ev.Step.Error != "" {
		m.Why = fmt.Sprintf("%s %s on %s: %s", ev.Step.Phase, ev.Step.Action, ev.Step.Target, ev.Step.Error)
	}
	m.Title = m.Software
	if m.Where != "" {
		m.Title += " in " + m.Where
	}
	m.Title = oneLine(m.Title + ": " + m.What)
	return m
}

func software(ev events.SagaEvent) string {
	s := ev.Software
	if s == "" {
		s = "saga " + ev.Saga
	}
	switch {
	case ev.From != "" && ev.To != "":
		s += " " + ev.From + " -> " + ev.To
	case ev.To != "":
		s += " -> " + ev.To
	case ev.From != "":
		s += " " + ev.From
	}
	return s
}

// next says what happens now, and whether someone must act.
func next(ev events.SagaEvent) string {
	status := "upshift status " + ev.Saga
	switch ev.Kind {
	case "requested", "prechecking", "backing_up", "deploying", "verifying":
		return "upshift carries on; nothing to do"
	case "awaiting_approval":
		return "a human must decide: upshift approve " + ev.Saga + " (or reject)"
	case "awaiting_confirmation":
		return "people must confirm they are on hand: upshift confirm " + ev.Saga + " --role ROLE --by NAME"
	case "awaiting_window":
		return "waiting for the maintenance window; nothing to do"
	case "rolling_back":
		return "rolling back: what was deployed is being undone, newest first"
	case "rolled_back":
		return "rolled back: the previous release is in service again"
	case "rollback_failed":
		return "a human must act: the roll-back did not complete; see " + status
	case "failed":
		if ev.DryRun {
			return "nothing was changed (dry run)"
		}
		return "nothing was deployed: the targets run what they ran before"
	case "rejected", "cancelled":
		return "nothing was deployed"
	case "succeeded":
		return "done; nothing to do"
	case "checked":
		return "nothing was changed (dry run); submit without --dry-run to upgrade"
	case events.KindStepFailed:
		return "upshift rolls back what was deployed, or fails the saga if nothing was; the next notice says which"
	case events.KindApproved:
		return "the saga goes on"
	case events.KindConfirmed:
		return "the saga goes on once every role has confirmed"
	case events.KindAnnouncement:
		return "nothing to do: this is notice of a planned change; see " + status
	case events.KindIgnored:
		return "nothing: the input came too late and was recorded"
	case events.KindInvalid:
		return "nothing was started: fix the request and submit it again"
	}
	return "see " + status
}

// Short is the chat message: a few lines.
func (m Message) Short() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", severityMark(m.Severity), m.Title)
	if m.Why != "" {
		fmt.Fprintf(&b, "\n%s", oneLine(m.Why))
	}
	fmt.Fprintf(&b, "\nNext: %s\nMore: `%s`", m.Next, m.Command)
	return b.String()
}

func severityMark(s string) string {
	switch s {
	case SeverityCritical:
		return "[CRITICAL]"
	case SeverityAction:
		return "[ACTION]"
	case SeverityWarning:
		return "[WARNING]"
	}
	return "[info]"
}

// rows are the message's facts, in reading order, without the empty ones.
func (m Message) rows() [][2]string {
	var out [][2]string
	for _, r := range [][2]string{{"What happened", m.What}, {"Software", m.Software}, {"Environment", m.Where},
		{"Targets", m.Targets}, {"Why", m.Why}, {"What happens next", m.Next}, {"Severity", m.Severity},
		{"Team", m.Team}, {"Saga", m.Saga}} {
		if r[1] != "" {
			out = append(out, r)
		}
	}
	return out
}

// Text is the complete message in plain text.
func (m Message) Text() string {
	var b strings.Builder
	b.WriteString(m.Title + "\n\n")
	for _, r := range m.rows() {
		fmt.Fprintf(&b, "%-18s %s\n", r[0]+":", strings.ReplaceAll(r[1], "\n", "\n"+strings.Repeat(" ", 19)))
	}
	fmt.Fprintf(&b, "\nSee more: %s\n", m.Command)
	return b.String()
}

var htmlMessage = template.Must(template.New("mail").Parse(`<!DOCTYPE html>
<html><body style="font-family: sans-serif">
<h2>{{.Title}}</h2>
<table cellpadding="4">
{{- range .Rows}}
<tr><th align="left" valign="top">{{index . 0}}</th><td style="white-space: pre-wrap">{{index . 1}}</td></tr>
{{- end}}
</table>
<p>See more: <code>{{.Command}}</code></p>
</body></html>
`))

// HTML is the complete message as an HTML page; every value is escaped.
func (m Message) HTML() string {
	var b bytes.Buffer
	// The template is fixed and its data strings: it cannot fail.
	_ = htmlMessage.Execute(&b, struct {
		Title, Command string
		Rows           [][2]string
	}{m.Title, m.Command, m.rows()})
	return b.String()
}
