package deploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/upshift/upshift/pkg/phase"
)

// rollback puts cmd.Upgrade.From back in service. It is the compensation
// of an apply, which may have failed, never run, or run and been undone by
// its own recovery: so it does nothing, and restarts nothing, when From is
// already current, unless an interrupted apply left it stopped
// (StoppedFile), in which case it starts it. A stop that fails leaves current as it was: switching
// under a process that would not stop is not safe, so that is for a human.
func (s *step) rollback(ctx context.Context) (phase.Outcome, error) {
	back := s.cmd.Upgrade.From
	out := map[string]string{}
	if back == "" {
		return s.outcome(out, failed(ReasonNoPreviousRelease,
			errors.New("the apply was a fresh install: there is no release to go back to")))
	}
	if err := checkVersion("rollback", back); err != nil {
		return s.outcome(out, failed(ReasonInvalidVersion, err))
	}
	unlock, err := lockTarget(ctx, s.t.Root)
	if err != nil {
		return s.outcome(out, err)
	}
	defer unlock()
	err = s.rollbackLocked(ctx, back, out)
	if cur, cerr := s.t.CurrentVersion(); cerr == nil {
		out["current"] = cur
	}
	return s.outcome(out, err)
}

func (s *step) rollbackLocked(ctx context.Context, back string, out map[string]string) error {
	cur, err := s.installed()
	if err != nil {
		return err
	}
	if cur == back {
		out["unchanged"] = "true"
		if s.stopped() != back {
			s.add("switch", true, "current is already releases/"+back+"; nothing to do")
			return nil
		}
		s.add("switch", true, "current is already releases/"+back+", stopped by an interrupted apply")
		out["restarted"] = back
		if err := s.hook(ctx, "start", s.t.Hooks.Start, s.hookEnv(back, s.cmd.Upgrade.To)); err != nil {
			return s.hookFailure(ctx, ReasonStartFailed, err)
		}
		s.clearStopped()
		return nil
	}
	if !isDir(s.t.Release(back)) {
		return failed(ReasonNoPreviousRelease, fmt.Errorf("%s has no release %s to go back to", s.t.Name, back))
	}
	out["rolled_back_from"] = cur
	env := s.hookEnv(back, cur)
	if cur == "" {
		s.add("stop", true, "nothing installed; nothing to stop")
	} else if err := s.hook(ctx, "stop", s.t.Hooks.Stop, env); err != nil {
		return s.hookFailure(ctx, ReasonStopFailed, err)
	}
	if err := s.switchCurrent("switch", back); err != nil {
		return failed(ReasonSwitchFailed, err)
	}
	if err := s.hook(ctx, "start", s.t.Hooks.Start, env); err != nil {
		return s.hookFailure(ctx, ReasonStartFailed, err)
	}
	s.clearStopped()
	return nil
}

// hookFailure is a failed hook as the step's failure; an interrupted one is
// left to the redelivery.
func (s *step) hookFailure(ctx context.Context, reason string, err error) error {
	if ctx.Err() != nil {
		return err
	}
	return failed(reason, fmt.Errorf("%s: %w", reason, err))
}
