package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/spec"
)

// Reasons of a failed maintenance step.
const (
	// ReasonMaintenanceUnconfigured: the target's configuration does not
	// say what the action is to work on (no database, no purge rule of
	// that name, no logs or config section).
	ReasonMaintenanceUnconfigured = "maintenance_unconfigured"
	ReasonMaintenanceFailed       = "maintenance_failed"
	// ReasonLoggingStopped: after archive-logs the live log was not
	// written to within the check's time.
	ReasonLoggingStopped = "logging_stopped"
	// ReasonNoBaseline: config-drift found no recorded baseline.
	ReasonNoBaseline = "no_baseline"
)

// errUnconfigured marks an action the target's configuration does not set up.
var errUnconfigured = errors.New("not configured for this target")

// maintain runs a Maintenance request's actions on the target, in the
// request's order, under the target's lock (so never while an apply or a
// rollback runs), each reported with what it touched and how long it took.
// The first failure ends the step: the saga then restores the backup taken
// before, if an action changed data (spec.DataActions). Maintenance lives in
// deploy because deploy owns the target's lock and its one-at-a-time
// command order, and the saga's deploy phase is where a change is made and
// then verified.
func (s *step) maintain(ctx context.Context) (phase.Outcome, error) {
	actions := s.cmd.Upgrade.Actions
	if len(actions) == 0 {
		return s.outcome(nil, failed(ReasonMaintenanceUnconfigured, errors.New("the request names no maintenance action")))
	}
	unlock, err := lockTarget(ctx, s.t.Root)
	if err != nil {
		return s.outcome(nil, err)
	}
	defer unlock()
	out := map[string]string{"actions": strings.Join(actions, ",")}
	for _, a := range actions {
		s.stage("maintenance: " + a)
		var err error
		switch a {
		case spec.ActionReindex, spec.ActionAnalyze, spec.ActionVacuum:
			err = s.databaseWork(ctx, a, out)
		case spec.ActionPurge:
			err = s.purge(ctx, out)
		case spec.ActionArchiveLogs:
			err = s.archiveLogs(ctx, out)
		case spec.ActionConfigDrift:
			err = s.configDrift(out)
		case spec.ActionConfigBaseline:
			err = s.configBaseline(out)
		default:
			err = failed(ReasonMaintenanceUnconfigured, fmt.Errorf("unknown maintenance action %q", a))
		}
		if err != nil {
			if ctx.Err() != nil {
				return s.outcome(out, ctx.Err())
			}
			reason := ReasonMaintenanceFailed
			var se *stepError
			if errors.As(err, &se) {
				reason, err = se.reason, se.err
			} else if errors.Is(err, errUnconfigured) {
				reason = ReasonMaintenanceUnconfigured
			}
			s.add(a, false, err.Error())
			return s.outcome(out, failed(reason, fmt.Errorf("%s on %s: %w", a, s.t.Name, err)))
		}
	}
	return s.outcome(out, nil)
}
