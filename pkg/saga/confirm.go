package saga

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/window"
)

// confirm records one role's confirmation. Each role confirms once: a
// second confirmation of a role, such as a redelivered one, changes
// nothing. Confirmations are taken from the start until the saga stops
// waiting for them.
func (m *machine) confirm(in Input) {
	roles := m.s.Options.Confirm.Roles
	switch {
	case m.s.State.Terminal() || m.s.State == StateRollingBack:
		m.ignore(fmt.Sprintf("saga is %s", m.s.State))
	case m.s.Request.Spec.DryRun:
		m.ignore("a dry run changes nothing: it asks for no confirmation")
	case len(roles) == 0:
		m.ignore("this saga asks for no confirmation")
	case in.Role == "":
		m.ignore("a confirmation names its role")
	case strings.TrimSpace(in.Actor) == "":
		m.ignore("a confirmation names who confirms")
	case !slices.Contains(roles, in.Role):
		m.ignore(fmt.Sprintf("role %q: this saga asks %s to confirm", in.Role, strings.Join(roles, ", ")))
	default:
		if c, ok := m.s.Confirmed(in.Role); ok {
			m.ignore(fmt.Sprintf("role %s already confirmed by %s at %s", c.Role, c.By, c.At.Format(time.RFC3339)))
			return
		}
		if m.s.State != StateRequested && m.s.State != StatePrechecking && m.s.State != StateAwaitingConfirmation {
			m.ignore(fmt.Sprintf("saga is %s: confirmations are taken before the backup starts", m.s.State))
			return
		}
		m.s.Confirmations = append(m.s.Confirmations, Confirmation{Role: in.Role, By: in.Actor, Comment: in.Comment, At: m.at})
		missing := m.s.Unconfirmed()
		reason := "every role confirmed"
		if len(missing) > 0 {
			reason = "waiting for " + strings.Join(missing, ", ")
		}
		m.note(events.SagaEvent{Kind: events.KindConfirmed, Role: in.Role, Actor: in.Actor, Comment: in.Comment, Reason: reason})
		if m.s.State == StateAwaitingConfirmation && len(missing) == 0 {
			m.awaitApproval()
		}
	}
}

// planAnnouncement plans the announcement, if one is asked for: a set time
// before the next window opens, or at once if that time has passed, the
// window is open or there is none.
func (m *machine) planAnnouncement() {
	a := m.s.Options.Announce
	if len(a.Teams) == 0 || !m.s.AnnouncedAt.IsZero() {
		return
	}
	open := m.nextWindow()
	at := open.Add(-a.Before.Duration)
	if open.IsZero() || !at.After(m.at) {
		m.announce()
		return
	}
	m.s.AnnounceAt = at
	m.wake(at)
}

// announce tells the announcement's teams what will happen and when, once.
func (m *machine) announce() {
	m.s.AnnounceAt = time.Time{}
	if !m.s.AnnouncedAt.IsZero() {
		return
	}
	m.s.AnnouncedAt = m.at
	r := m.s.Request
	what := fmt.Sprintf("%d targets", len(r.Spec.Targets))
	if len(r.Spec.Targets) == 1 {
		what = "1 target"
	}
	if r.Metadata.Environment != "" {
		what += " in " + r.Metadata.Environment
	}
	when := "; it starts once confirmed and approved, no window to wait for"
	open := m.nextWindow()
	if !open.IsZero() {
		when = "; the window opens " + open.Format(time.RFC3339)
	} else if m.windowed() {
		when = "; the window is open"
	}
	m.note(events.SagaEvent{Kind: events.KindAnnouncement, Reason: what + when,
		Audience: m.s.Options.Announce.Teams, WindowStart: open})
}

// nextWindow is when the next window opens, zero if none is set, one is
// open now, or none opens within the horizon (window fails the saga then).
func (m *machine) nextWindow() time.Time {
	reqWin, err1 := spec.CompileWindows(m.s.Request.Spec.Windows)
	envWin, err2 := spec.CompileWindows(m.s.Options.Windows)
	if err1 != nil || err2 != nil || len(reqWin) == 0 && len(envWin) == 0 {
		return time.Time{}
	}
	open, ok := window.Both(reqWin, envWin, m.at, m.at.Add(WindowHorizon))
	if !ok || !open.After(m.at) {
		return time.Time{}
	}
	return open
}

// windowed reports whether the saga has windows at all.
func (m *machine) windowed() bool {
	return len(m.s.Request.Spec.Windows) > 0 || len(m.s.Options.Windows) > 0
}
