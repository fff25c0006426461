package coordinator

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/fleet"
	"github.com/upshift/upshift/pkg/labels"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/services/coordinator/api"
)

// served resolves req's selector, if it has one, into its targets, then
// names the targets of req that some phase service serves on no instance.
// Every instance announces the targets it serves in the registry of
// targets while it runs (package fleet); a command for a target none
// announces would sit in the work queue until its phase's deadline, so the
// request is refused at once instead, saying what is missing.
func (c *Coordinator) served(ctx context.Context, req *spec.Request) ([]string, error) {
	// The view of the registry is believed when every target is served;
	// anything missing is asked of the registry itself.
	if c.viewServes(req) {
		return nil, nil
	}
	// A listing that starts while an entry is being refreshed can miss
	// it (fleet.Served): missing targets are only believed when the
	// registry says so again, a moment later.
	var problems []string
	for try := 1; ; try++ {
		orig := *req
		var err error
		problems, err = c.servedOnce(ctx, req)
		if err != nil || len(problems) == 0 || try == fleet.Retries {
			return problems, err
		}
		*req = orig
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(fleet.RetryPause):
		}
	}
}

// viewServes reports whether the view of the registry has every target of
// req served for every phase, the selector's targets resolved in it first.
func (c *Coordinator) viewServes(req *spec.Request) bool {
	view, now := c.engine.view, c.engine.now()
	if req.Spec.Selector == "" {
		for _, t := range req.Spec.Targets {
			for _, p := range events.Phases {
				if !view.Served(t, string(p), now) {
					return false
				}
			}
		}
		return len(req.Spec.Targets) > 0
	}
	l, ok := view.Listing(now)
	if !ok {
		return false
	}
	orig := *req
	if len(check(l, req)) > 0 {
		*req = orig
		return false
	}
	return true
}

func (c *Coordinator) servedOnce(ctx context.Context, req *spec.Request) ([]string, error) {
	l, err := fleet.List(ctx, c.registry)
	if err != nil {
		return nil, err
	}
	return check(l, req), nil
}

// check resolves req's selector, if it has one, against the listing l,
// and names the targets of req that no instance of some phase serves in
// it.
func check(l fleet.Listing, req *spec.Request) []string {
	if req.Spec.Selector != "" {
		sel, err := labels.ParseSelector(req.Spec.Selector)
		if err != nil {
			return []string{err.Error()}
		}
		chosen := l.Select(sel).Targets()
		switch {
		case len(chosen) == 0:
			return []string{fmt.Sprintf("selector %q matches no target in the registry of targets (%d announced): see `upshift targets`",
				req.Spec.Selector, len(l.Targets()))}
		case len(chosen) > spec.MaxTargets:
			return []string{fmt.Sprintf("selector %q matches %d targets, limit %d", req.Spec.Selector, len(chosen), spec.MaxTargets)}
		}
		// Recorded in the saga: its batches are cut from this list, and
		// targets announced later are not added.
		req.Spec.Targets = chosen
		if p := req.Spec.Rollout.BatchPercent; p > 0 {
			// The share is of the targets chosen, known only now.
			req.Spec.Rollout.BatchSize = spec.PercentSize(len(chosen), p)
		}
	}
	by := l.Services()
	var problems []string
	for _, t := range req.Spec.Targets {
		var missing []string
		for _, p := range events.Phases {
			if !by[t][string(p)] {
				missing = append(missing, string(p))
			}
		}
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("no service serves target %q: %s", t, strings.Join(missing, ", ")))
		}
	}
	return problems
}

// Targets lists the registry of targets, those sel chooses if it is set.
func (c *Coordinator) Targets(ctx context.Context, selector string) (fleet.Listing, error) {
	l, err := fleet.List(ctx, c.registry)
	if err != nil || selector == "" {
		return l, err
	}
	sel, err := labels.ParseSelector(selector)
	if err != nil {
		return fleet.Listing{}, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	return l.Select(sel), nil
}

// refusal is, for a command to a target that no instance of its service
// announces, the step's failure, published in the command's stead: the
// target's agent or service stopped after the saga was accepted (before
// its batch, say), and the command would otherwise wait for it until the
// phase's deadline. nil for any other message, or a served target.
func (e *engine) refusal(ctx context.Context, registry jetstream.KeyValue, m bus.Message) (*bus.Message, error) {
	if registry == nil || !strings.HasPrefix(m.Subject, strings.TrimSuffix(events.CommandSubjects[0], ">")) {
		return nil, nil
	}
	env, err := events.Decode(m.Data)
	if err != nil {
		return nil, nil // not ours to judge: sent as it is
	}
	var cmd events.Command
	if err := events.Open(env, events.TypeCommand, &cmd); err != nil {
		return nil, nil
	}
	if e.view.Served(cmd.Target, string(cmd.Phase), e.now()) {
		return nil, nil
	}
	if ok, err := fleet.Served(ctx, registry, cmd.Target, string(cmd.Phase)); err != nil || ok {
		return nil, err
	}
	now := e.now()
	r := events.StepResult{Step: cmd.Step, Saga: cmd.Saga, Phase: cmd.Phase, Action: cmd.Action, Target: cmd.Target,
		Attempt: cmd.Attempt, Status: events.StatusFailed, Reason: events.ReasonUnserved,
		Error: fmt.Sprintf("no %s instance serves target %q: none announces it in the registry of targets "+
			"(its agent or service stopped, or missed its heartbeats for %s); the command was not sent", cmd.Phase, cmd.Target, ttlWord(e.ttl)),
		StartedAt: now, FinishedAt: now}
	renv, err := events.New(events.ResultID(cmd.Step, events.StatusFailed, 0), events.TypeStep, e.source, cmd.Saga, cmd.Attempt, now, r)
	if err != nil {
		return nil, err
	}
	out, err := bus.Encode(events.ResultSubject(cmd.Saga, cmd.Phase, events.StatusFailed), renv)
	if err != nil {
		return nil, err
	}
	e.log.Warn("command refused: its target is not served", "saga", cmd.Saga, "step", cmd.Step, "target", cmd.Target)
	return &out, nil
}

func ttlWord(d time.Duration) string {
	if d <= 0 {
		return "the registry's TTL"
	}
	return d.String()
}
