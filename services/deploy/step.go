package deploy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/hooks"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/targets"
)

// ReasonBadLayout is a target root the service cannot work in, e.g. a
// current that is a directory rather than a link.
const ReasonBadLayout = "bad_layout"

// maxReportOutput is how much of a hook's output goes into its report line:
// a result event holds several hooks and must stay well under its size cap.
const maxReportOutput = 2 << 10

// lockPoll is how often a step waiting for the target lock tries again.
const lockPoll = 50 * time.Millisecond

// step is one command being executed: it accumulates the report.
type step struct {
	e        *Executor
	t        targets.Target
	cmd      events.Command
	progress phase.Progress
	log      *slog.Logger
	report   []events.ReportLine
}

// stepError ends a step with a reported failure; any other error is
// returned to the framework, which retries the command.
type stepError struct {
	reason string
	err    error
}

func (e *stepError) Error() string { return e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func failed(reason string, err error) error { return &stepError{reason: reason, err: err} }

// outcome turns how a step ended into the framework's terms.
func (s *step) outcome(output map[string]string, err error) (phase.Outcome, error) {
	if err == nil {
		s.log.Info("step done", "output", output)
		return phase.Success(output, s.report...), nil
	}
	var se *stepError
	if !errors.As(err, &se) {
		s.log.Warn("step interrupted; it will be retried", "err", err)
		return phase.Outcome{}, err
	}
	s.log.Warn("step failed", "reason", se.reason, "err", se.err)
	o := phase.Failure(se.reason, se.err, s.report...)
	o.Output = output
	return o, nil
}

func (s *step) add(name string, ok bool, detail string) {
	s.report = append(s.report, events.ReportLine{Name: name, OK: ok, Detail: detail})
}

func (s *step) stage(msg string) {
	s.log.Info(msg)
	if s.progress != nil {
		s.progress(msg)
	}
}

// hookEnv is the UPSHIFT_* environment of a hook acting on version.
func (s *step) hookEnv(version, previous string) []string {
	return s.t.HookEnv(map[string]string{
		"UPSHIFT_VERSION": version, "UPSHIFT_PREVIOUS": previous,
		"UPSHIFT_RELEASE": s.t.Release(version), "UPSHIFT_SAGA": s.cmd.Saga,
	})
}

// hook runs h, if configured, and reports it under name. A hook killed
// because the service is shutting down is an interruption (retried), not a
// failure of the hook.
func (s *step) hook(ctx context.Context, name string, h *targets.Hook, env []string) error {
	if h == nil {
		s.add(name, true, "no "+name+" hook configured")
		return nil
	}
	s.stage("running " + name + " hook")
	s.endLeftoverHook()
	res, err := hooks.Run(ctx, h.Command, s.t.Root, env, h.Timeout.Duration, hooks.Started(s.recordHook))
	if ctx.Err() == nil {
		s.forgetHook() // an interrupted hook's record stays, for the next one to end it
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s hook of %s: %w", name, s.t.Name, ctx.Err())
	}
	detail := fmt.Sprintf("exit %d in %s", res.ExitCode, res.Duration.Round(time.Millisecond))
	if err != nil {
		detail = err.Error() + fmt.Sprintf(" (after %s)", res.Duration.Round(time.Millisecond))
	}
	if out := outputTail(res.Output); out != "" {
		detail += "\n" + out
	}
	s.add(name, err == nil, detail)
	if err != nil {
		s.log.Warn("hook failed", "hook", name, "exit", res.ExitCode, "err", err)
	}
	return err
}

func outputTail(out string) string {
	out = strings.TrimSpace(out)
	if len(out) > maxReportOutput {
		out = "…" + out[len(out)-maxReportOutput:]
	}
	return out
}

// lockTarget takes the target's lock, waiting for it as long as ctx allows.
// flock is released by the kernel if the process dies, so a crash never
// leaves a target locked.
func lockTarget(ctx context.Context, root string) (unlock func(), err error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", root, err)
	}
	path := filepath.Join(root, LockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// installed is the version current points at, "" if none.
func (s *step) installed() (string, error) {
	v, err := s.t.CurrentVersion()
	if err != nil {
		return "", failed(ReasonBadLayout, fmt.Errorf("%s: %w (is %s a link?)", s.t.Name, err, s.t.Current()))
	}
	return v, nil
}

// switchTo points current at releases/<version> in one rename, so a reader
// sees the old release or the new one, never no link at all. The link is
// relative, so the root may be moved or mounted elsewhere.
func switchTo(root, version string) error {
	tmp := filepath.Join(root, ".current-"+rand.Text()[:12])
	if err := os.Symlink(filepath.Join("releases", version), tmp); err != nil {
		return fmt.Errorf("switch to %s: %w", version, err)
	}
	if err := os.Rename(tmp, filepath.Join(root, "current")); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("switch to %s: %w", version, err)
	}
	if err := syncDir(root); err != nil {
		return fmt.Errorf("switch to %s: %w", version, err)
	}
	return nil
}

// switchCurrent switches and reports it under name.
func (s *step) switchCurrent(name, version string) error {
	s.stage("switching current to " + version)
	start := time.Now()
	if err := switchTo(s.t.Root, version); err != nil {
		s.add(name, false, err.Error())
		return err
	}
	s.add(name, true, fmt.Sprintf("current -> releases/%s in %s", version, time.Since(start).Round(time.Microsecond)))
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
