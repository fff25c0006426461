package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
)

// Severities of a notice.
const (
	SeverityCritical = "critical" // the saga failed, or its roll-back did: a human is needed
	SeverityWarning  = "warning"  // something went wrong, or was stopped, and was handled
	SeverityAction   = "action"   // the saga waits for someone
	SeverityInfo     = "info"     // progress
)

// maxSummary bounds a summary: it is one line for a chat or a pager.
const maxSummary = 500

// route turns one saga event into one notice per team. A failure to publish
// is retried; an event that can never be routed is terminated.
func (s *Service) route(ctx context.Context, d *consumer.Delivery) error {
	var ev events.SagaEvent
	if err := events.Open(d.Event(), events.TypeSaga, &ev); err != nil {
		return err
	}
	log := s.log.With("saga", ev.Saga, "kind", ev.Kind)
	for _, tok := range []string{ev.Saga, ev.Kind} {
		if err := events.CheckToken(tok); err != nil {
			return consumer.Permanent(fmt.Errorf("route %s: %w", d.Event().ID, err))
		}
	}
	teams := teamsOf(ev)
	if len(teams) == 0 {
		log.Warn("saga event names no team; nobody to tell", "event", d.Event().ID)
		return nil
	}
	n := events.Notice{Saga: ev.Saga, Kind: ev.Kind, Severity: severity(ev), Summary: summary(ev), Targets: targetsOf(ev), Event: ev}
	// The request is in the audit log; a notice stays small.
	n.Event.Request = nil
	var bad []error
	for _, team := range teams {
		if err := events.CheckToken(team); err != nil {
			bad = append(bad, fmt.Errorf("team %q: %w", team, err))
			continue
		}
		n.Team = team
		// The id is the saga event's plus the team: a redelivered event
		// yields the same ids, which the NOTIFY stream drops.
		env, err := events.New(d.Event().ID+"/"+team, events.TypeNotice, "upshift/"+s.cfg.Instance, ev.Saga, 0, d.Event().Time, n)
		if err != nil {
			return consumer.Permanent(fmt.Errorf("route %s to %s: %w", d.Event().ID, team, err))
		}
		if err := bus.Publish(ctx, s.js, events.NotifySubject(team, ev.Saga, ev.Kind), env); err != nil {
			return fmt.Errorf("route %s to %s: %w", d.Event().ID, team, err)
		}
	}
	if len(bad) > 0 {
		// The other teams have their notices; these never will.
		return consumer.Permanent(fmt.Errorf("route %s: %w", d.Event().ID, errors.Join(bad...)))
	}
	log.Debug("routed", "teams", teams)
	return nil
}

// targetsOf lists the request's targets, which people want to see: every
// saga event names them; an invalid request's event has only the request,
// read before it is dropped from the notice (one that does not decode names
// none).
func targetsOf(ev events.SagaEvent) []string {
	if len(ev.Targets) > 0 {
		return ev.Targets
	}
	var req struct {
		Spec struct {
			Targets []string `json:"targets"`
		} `json:"spec"`
	}
	if len(ev.Request) == 0 || json.Unmarshal(ev.Request, &req) != nil {
		return nil
	}
	return req.Spec.Targets
}

// teamsOf lists the teams to tell, once each, in order: the request's,
// then those an announcement names.
func teamsOf(ev events.SagaEvent) []string {
	all := ev.Teams
	if len(all) == 0 && ev.Team != "" {
		all = []string{ev.Team}
	}
	all = append(slices.Clip(all), ev.Audience...)
	var out []string
	seen := map[string]bool{}
	for _, t := range all {
		if t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// severity says how urgent a notice is. A dry run changes nothing, so its
// failed checks are a warning, not an emergency.
func severity(ev events.SagaEvent) string {
	if ev.DryRun && ev.Kind == "failed" {
		return SeverityWarning
	}
	switch ev.Kind {
	case "failed", "rollback_failed":
		return SeverityCritical
	case "rolling_back", "rolled_back", "cancelled", "rejected",
		events.KindStepFailed, events.KindIgnored, events.KindInvalid:
		return SeverityWarning
	case "awaiting_approval", "awaiting_confirmation":
		return SeverityAction
	}
	return SeverityInfo
}

// summary is one human line: what, where, what happened, why.
//
//	billing 4.1 -> 4.2 (production, batch 1/2): rolling back: verify probe on web-2 failed: health 503
func summary(ev events.SagaEvent) string {
	var b strings.Builder
	b.WriteString(ev.Software)
	if ev.Software == "" {
		b.WriteString("saga " + ev.Saga)
	}
	switch {
	case ev.From != "" && ev.To != "":
		b.WriteString(" " + ev.From + " -> " + ev.To)
	case ev.To != "":
		b.WriteString(" -> " + ev.To)
	case ev.From != "":
		b.WriteString(" " + ev.From)
	}
	var where []string
	if ev.Environment != "" {
		where = append(where, ev.Environment)
	}
	if ev.DryRun {
		where = append(where, "dry run")
	}
	if showBatch(ev) {
		batch := ev.Batch
		if ev.Step != nil {
			batch = ev.Step.Batch
		}
		where = append(where, fmt.Sprintf("batch %d/%d", batch+1, ev.Batches))
	}
	if len(where) > 0 {
		b.WriteString(" (" + strings.Join(where, ", ") + ")")
	}
	b.WriteString(": " + happened(ev))
	if why := because(ev); why != "" {
		b.WriteString(": " + why)
	}
	return oneLine(b.String())
}

func happened(ev events.SagaEvent) string {
	switch ev.Kind {
	case events.KindStepFailed:
		return "step failed"
	case events.KindApproved:
		if ev.Actor != "" {
			return "approved by " + ev.Actor
		}
		return "approved"
	case events.KindIgnored:
		return "late result"
	case events.KindInvalid:
		return "request refused"
	case events.KindConfirmed:
		return ev.Role + " confirmed by " + ev.Actor
	}
	return strings.ReplaceAll(ev.Kind, "_", " ")
}

func because(ev events.SagaEvent) string {
	switch ev.Kind {
	case events.KindApproved:
		return ev.Comment
	case "awaiting_approval":
		hint := "upshift approve " + ev.Saga
		if ev.Reason != "" {
			return ev.Reason + " (" + hint + ")"
		}
		return hint
	case "awaiting_confirmation":
		return ev.Reason + " (upshift confirm " + ev.Saga + " --role ROLE)"
	case events.KindConfirmed:
		if ev.Comment != "" {
			return ev.Comment + "; " + ev.Reason
		}
	}
	return ev.Reason
}

// showBatch says whether the batch means something: once deploying has
// begun, and only when there is more than one.
func showBatch(ev events.SagaEvent) bool {
	if ev.Batches < 2 {
		return false
	}
	if ev.Step != nil {
		return ev.Step.Phase == events.Deploy || ev.Step.Phase == events.Verify
	}
	switch ev.State {
	case "deploying", "verifying", "rolling_back", "rolled_back", "rollback_failed":
		return true
	}
	return false
}

// oneLine folds line breaks (a reason may quote a command's output) and cuts
// the summary to its bound, on a character boundary.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxSummary {
		return s
	}
	cut := maxSummary
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
