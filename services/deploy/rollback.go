package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/spec"
)

// rollback puts cmd.Upgrade.From back in service. It is the compensation
// of an apply, which may have failed, never run, or run and been undone by
// its own recovery: so it does nothing, and restarts nothing, when From is
// already current, unless an interrupted apply or rollback left it stopped
// (StoppedFile), in which case it starts it. A stop that fails leaves current as it was: switching
// under a process that would not stop is not safe, so that is for a human.
func (s *step) rollback(ctx context.Context) (phase.Outcome, error) {
	back := s.cmd.Upgrade.From
	out := map[string]string{}
	if back == "" && s.cmd.Upgrade.Kind == string(spec.KindInstall) {
		return s.uninstall(ctx, out)
	}
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
		if s.stopped() == "" {
			s.add("switch", true, "current is already releases/"+back+"; nothing to do")
			return nil
		}
		s.add("switch", true, "current is already releases/"+back+", stopped by an interrupted apply or rollback")
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
	} else {
		// Marked as an apply marks it: a rollback killed between its stop
		// and its start leaves the target dark, whether current moved yet
		// or not, until a restart or the redelivery starts it.
		if err := s.markStopped(cur); err != nil {
			return err
		}
		if err := s.hook(ctx, "stop", s.t.Hooks.Stop, env); err != nil {
			return s.hookFailure(ctx, ReasonStopFailed, err)
		}
	}
	if err := s.switchCurrent("switch", back); err != nil {
		return failed(ReasonSwitchFailed, err)
	}
	if cur != "" {
		if err := markGood(s.t.Release(cur), false); err != nil {
			s.log.Warn("cannot mark the release rolled back from", "release", cur, "err", err)
		}
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

// uninstall is the compensation of a first install: it leaves the target
// as empty as the install found it. The release in service is stopped and
// the current link removed only if it is this install's, and the release
// directory is removed only if it holds this install's package: what
// anything else put there is left alone.
func (s *step) uninstall(ctx context.Context, out map[string]string) (phase.Outcome, error) {
	to := s.cmd.Upgrade.To
	if err := checkVersion("install", to); err != nil {
		return s.outcome(out, failed(ReasonInvalidVersion, err))
	}
	unlock, err := lockTarget(ctx, s.t.Root)
	if err != nil {
		return s.outcome(out, err)
	}
	defer unlock()
	err = s.uninstallLocked(ctx, to, out)
	if cur, cerr := s.t.CurrentVersion(); cerr == nil {
		out["current"] = cur
	}
	return s.outcome(out, err)
}

func (s *step) uninstallLocked(ctx context.Context, to string, out map[string]string) error {
	cur, err := s.installed()
	if err != nil {
		return err
	}
	switch cur {
	case to:
		if err := s.hook(ctx, "stop", s.t.Hooks.Stop, s.hookEnv(to, "")); err != nil {
			return s.hookFailure(ctx, ReasonStopFailed, err)
		}
		if err := os.Remove(s.t.Current()); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.add("switch", false, err.Error())
			return failed(ReasonSwitchFailed, fmt.Errorf("remove the current link: %w", err))
		}
		if err := syncDir(s.t.Root); err != nil {
			return fmt.Errorf("remove the current link: %w", err)
		}
		s.add("switch", true, "current removed: nothing is in service")
		out["uninstalled"] = to
	case "":
		s.add("switch", true, "nothing in service; nothing to stop")
	default:
		s.add("switch", true, fmt.Sprintf("current is releases/%s, not this install's %s: left as it is", cur, to))
		out["unchanged"] = "true"
	}
	s.clearStopped()
	release := s.t.Release(to)
	m, err := ReadMarker(release)
	switch {
	case cur != to && cur != "":
		return nil
	case errors.Is(err, os.ErrNotExist):
		if _, lerr := os.Lstat(release); lerr == nil {
			s.add("remove", true, release+" has no release marker: not this install's, left as it is")
		}
	case err != nil || m.Digest != s.cmd.Upgrade.Artifact.Digest:
		s.add("remove", true, release+" holds another package: left as it is")
	default:
		if err := os.RemoveAll(release); err != nil {
			s.add("remove", false, err.Error())
			return failed(ReasonSwitchFailed, fmt.Errorf("remove %s: %w", release, err))
		}
		os.Remove(s.t.Releases()) // only if empty: the target is as the install found it
		s.add("remove", true, "removed "+release)
	}
	return nil
}
