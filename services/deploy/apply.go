package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/upshift/upshift/pkg/artifact"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/pkg/unpack"
)

// apply installs cmd.Upgrade.To and switches the target to it. Whatever
// fails after the previous release was stopped, it is started again before
// the step reports, since the compensating rollback finds current unchanged.
// An apply interrupted before it can report leaves StoppedFile instead, and
// the rollback starts what it names.
func (s *step) apply(ctx context.Context) (phase.Outcome, error) {
	up := s.cmd.Upgrade
	out := map[string]string{"previous": "", "current": "", "release": ""}
	if err := checkVersion("target", up.To); err != nil {
		return s.outcome(out, failed(ReasonInvalidVersion, err))
	}
	if up.From != "" {
		if err := checkVersion("from", up.From); err != nil {
			return s.outcome(out, failed(ReasonInvalidVersion, err))
		}
	}
	unlock, err := lockTarget(ctx, s.t.Root)
	if err != nil {
		return s.outcome(out, err)
	}
	defer unlock()
	err = s.applyLocked(ctx, out)
	if cur, cerr := s.t.CurrentVersion(); cerr == nil {
		out["current"] = cur
	}
	return s.outcome(out, err)
}

func (s *step) applyLocked(ctx context.Context, out map[string]string) error {
	to, release := s.cmd.Upgrade.To, s.t.Release(s.cmd.Upgrade.To)
	out["release"] = release
	prev, err := s.installed()
	if err != nil {
		return err
	}
	// A re-run after a crash past the switch finds the new release current:
	// the release to go back to is still the one the request came from.
	if prev == to && s.cmd.Upgrade.From != "" && s.cmd.Upgrade.From != to && isDir(s.t.Release(s.cmd.Upgrade.From)) {
		prev = s.cmd.Upgrade.From
	}
	out["previous"] = prev
	if s.cmd.Upgrade.Kind == string(spec.KindInstall) && prev != "" && prev != to {
		return failed(ReasonNotEmpty, fmt.Errorf("%s has release %s in service: a first install needs an empty target", s.t.Name, prev))
	}
	if err := s.install(ctx); err != nil {
		return err
	}

	env := s.hookEnv(to, prev)
	if prev == "" {
		s.add("stop", true, "nothing installed; nothing to stop")
	} else {
		if err := s.markStopped(prev); err != nil {
			return err
		}
		if err := s.hook(ctx, "stop", s.t.Hooks.Stop, env); err != nil {
			return s.recover(ctx, prev, false, ReasonStopFailed, err)
		}
	}
	if err := s.migrate(ctx, s.t.Release(to), out); err != nil {
		return s.recover(ctx, prev, false, ReasonMigrateFailed, err)
	}
	if err := s.hook(ctx, "migrate", s.t.Hooks.Migrate, env); err != nil {
		return s.recover(ctx, prev, false, ReasonMigrateFailed, err)
	}
	if err := s.switchCurrent("switch", to); err != nil {
		return s.recover(ctx, prev, true, ReasonSwitchFailed, err)
	}
	if err := s.hook(ctx, "start", s.t.Hooks.Start, env); err != nil {
		return s.recover(ctx, prev, true, ReasonStartFailed, err)
	}
	s.clearStopped()
	if err := markGood(s.t.Release(to), true); err != nil {
		s.log.Warn("cannot mark the release good; the clean-up will not count it", "err", err)
	}
	s.cleanup(to, prev, s.cmd.Upgrade.From)
	return nil
}

// markStopped records, before the stop hook runs, that version is about to
// be stopped (see StoppedFile).
func (s *step) markStopped(version string) error {
	if err := os.WriteFile(filepath.Join(s.t.Root, StoppedFile), []byte(version+"\n"), 0o644); err != nil {
		return fmt.Errorf("mark %s stopped: %w", s.t.Name, err)
	}
	return nil
}

// stopped returns the release an earlier apply stopped and did not start
// again, or "".
func (s *step) stopped() string {
	b, err := os.ReadFile(filepath.Join(s.t.Root, StoppedFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// clearStopped forgets the mark once something runs again.
func (s *step) clearStopped() {
	if err := os.Remove(filepath.Join(s.t.Root, StoppedFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("cannot remove the stopped mark", "err", err)
	}
}

// recover puts the previous release back in service after the apply failed
// with cause, and returns the step's failure. Interruptions are not
// recovered from here: the redelivered command runs the apply again.
func (s *step) recover(ctx context.Context, prev string, switched bool, reason string, cause error) error {
	if ctx.Err() != nil {
		return cause
	}
	fail := failed(reason, fmt.Errorf("%s: %w", reason, cause))
	if prev == "" || prev == s.cmd.Upgrade.To {
		s.add("restart", false, "fresh install: no previous release to go back to")
		return fail
	}
	if switched {
		if err := s.switchCurrent("switch back", prev); err != nil {
			return failed(reason, fmt.Errorf("%s: %w; switching back to %s failed too: %w", reason, cause, prev, err))
		}
	}
	if err := s.hook(ctx, "restart", s.t.Hooks.Start, s.hookEnv(prev, s.cmd.Upgrade.To)); err != nil {
		return failed(reason, fmt.Errorf("%s: %w; restarting %s failed too: %w", reason, cause, prev, err))
	}
	s.clearStopped()
	return fail
}

// install makes releases/<to> hold the package: reused if an earlier run
// extracted the same package, or if it is an adopted release whose files
// are the package's; else staged, verified and extracted.
func (s *step) install(ctx context.Context) error {
	a, to := s.cmd.Upgrade.Artifact, s.cmd.Upgrade.To
	release := s.t.Release(to)
	if a.URL == "" || a.Digest == "" {
		return failed(ReasonArtifactUnsupported, errors.New("an apply needs an artifact URL and digest"))
	}
	if err := os.MkdirAll(s.t.Releases(), 0o755); err != nil {
		return fmt.Errorf("releases of %s: %w", s.t.Name, err)
	}
	s.tidy()
	m, err := ReadMarker(release)
	switch {
	case err == nil && m.Digest == a.Digest:
		s.add("stage", true, "skipped: the release is already installed")
		s.add("extract", true, "reused "+release+", extracted earlier from "+a.Digest)
		return nil
	case err == nil && m.Content == "":
		return failed(ReasonReleaseConflict, fmt.Errorf("%w: %s exists and holds %s, not %s",
			ErrReleaseConflict, release, m.Digest, a.Digest))
	case err == nil: // adopted: compared with the package below
	case !errors.Is(err, os.ErrNotExist):
		return failed(ReasonReleaseConflict, fmt.Errorf("%w: %w", ErrReleaseConflict, err))
	default:
		if _, err := os.Lstat(release); err == nil {
			return failed(ReasonReleaseConflict, fmt.Errorf("%w: %s exists and has no release marker, so upshift did not install it: "+
				"`upshift adopt %s %s` records it as a release", ErrReleaseConflict, release, s.t.Name, to))
		}
	}

	s.stage("staging " + a.URL)
	start := time.Now()
	pkg, err := s.e.Artifacts.Fetch(ctx, a.URL, a.Digest)
	if err != nil {
		s.add("stage", false, err.Error())
		return stageFailure(ctx, err)
	}
	s.add("stage", true, fmt.Sprintf("staged and verified %s in %s", a.Digest, time.Since(start).Round(time.Millisecond)))

	s.stage("extracting into " + release)
	start = time.Now()
	tmp, st, err := extract(ctx, pkg, s.t.Releases(), to, s.e.Limits)
	if err == nil && m.Content != "" {
		return s.reuseAdopted(tmp, release, m)
	}
	if err == nil {
		err = s.finishRelease(tmp, release, a.Digest)
	}
	if err != nil {
		s.add("extract", false, err.Error())
		switch {
		case errors.Is(err, ErrUnsafePackage):
			return failed(ReasonUnsafePackage, err)
		case errors.Is(err, ErrBadPackage):
			return failed(ReasonBadPackage, err)
		}
		return err
	}
	detail := fmt.Sprintf("%d entries, %s, %d links, into %s in %s", st.Entries, targets.Bytes(st.Bytes), st.Links,
		release, time.Since(start).Round(time.Millisecond))
	if st.Stripped > 0 {
		detail += fmt.Sprintf("; setuid/setgid/sticky bits stripped from %d entries", st.Stripped)
	}
	s.add("extract", true, detail)
	return nil
}

// reuseAdopted compares the package, extracted into tmp, with an adopted
// release of the same version: the same files make it the same release,
// which from now on is known by the package's digest too.
func (s *step) reuseAdopted(tmp, release string, m Marker) error {
	defer os.RemoveAll(tmp)
	sum, err := ContentDigest(tmp)
	if err != nil {
		s.add("extract", false, err.Error())
		return err
	}
	if sum != m.Content {
		err := fmt.Errorf("%w: %s was adopted with files other than the package's (content %s, the package's %s)",
			ErrReleaseConflict, release, m.Content, sum)
		s.add("extract", false, err.Error())
		return failed(ReasonReleaseConflict, err)
	}
	m.Digest = s.cmd.Upgrade.Artifact.Digest
	if err := writeMarker(release, m); err != nil {
		return err
	}
	s.add("extract", true, "reused "+release+", adopted earlier: its files are the package's")
	return nil
}

// finishRelease links shared/ in, writes the marker and renames the
// extracted directory into place; on error it removes it.
func (s *step) finishRelease(tmp, release, digest string) (err error) {
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	shared := filepath.Join(s.t.Root, "shared")
	if isDir(shared) {
		if _, err := os.Lstat(filepath.Join(tmp, "shared")); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink(filepath.Join("..", "..", "shared"), filepath.Join(tmp, "shared")); err != nil {
				return fmt.Errorf("link shared: %w", err)
			}
		}
	}
	// The marker is written last, so a release with a marker is complete;
	// all of it is made durable before the rename puts it in place. It is
	// good only once a deploy has put it in service.
	if err := writeMarker(tmp, Marker{Digest: digest, InstalledAt: time.Now().UTC()}); err != nil {
		return err
	}
	if err := unpack.Sync(tmp); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	if err := os.Rename(tmp, release); err != nil {
		return fmt.Errorf("move release into place: %w", err)
	}
	return syncDir(s.t.Releases())
}

// tidy removes what a run that crashed may have left: half-extracted
// releases and switch links. Only called under the lock, so nothing else
// is writing them.
func (s *step) tidy() {
	left, _ := filepath.Glob(filepath.Join(s.t.Releases(), ".tmp-*"))
	links, _ := filepath.Glob(filepath.Join(s.t.Root, ".current-*"))
	for _, p := range append(left, links...) {
		if err := os.RemoveAll(p); err != nil {
			s.log.Warn("cannot remove a leftover", "path", p, "err", err)
		}
	}
}

// stageFailure tells a package that will never do from a hitch worth a retry.
func stageFailure(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return err
	case errors.Is(err, artifact.ErrDigestMismatch):
		return failed(ReasonDigestMismatch, err)
	case errors.Is(err, artifact.ErrTransient):
		return fmt.Errorf("stage: %w", err) // retried with back-off, given up at the last delivery
	case errors.Is(err, artifact.ErrUnavailable):
		return failed(ReasonArtifactUnavailable, err)
	case errors.Is(err, artifact.ErrUnsupported):
		return failed(ReasonArtifactUnsupported, err)
	case errors.Is(err, artifact.ErrNotAllowed):
		return failed(ReasonArtifactNotAllowed, err)
	case errors.Is(err, artifact.ErrTooLarge):
		return failed(ReasonArtifactTooLarge, err)
	}
	return fmt.Errorf("stage: %w", err)
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
