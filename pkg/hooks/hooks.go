// Package hooks runs a target's hook commands (stop, migrate, start): without
// a shell, in the target's directory, with a time-out that kills the hook's
// whole process group, and with the tail of its output kept for the report.
//
// A start hook that leaves a daemon running must redirect the daemon's output
// away from its own, or the hook is only considered finished when the
// daemon closes it (at most WaitDelay later).
package hooks

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors, for errors.Is.
var (
	ErrTimeout     = errors.New("hook timed out")
	ErrFailed      = errors.New("hook failed")
	ErrInterrupted = errors.New("hook interrupted")
)

// MaxOutput is how much of a hook's output is kept: the end of it.
const MaxOutput = 16 << 10

// WaitDelay is how long a finished hook's output pipes may stay open.
const WaitDelay = 2 * time.Second

// Option tunes Run.
type Option func(*options)

type options struct{ started func(pid int) }

// Started has Run tell f the hook's process id as soon as it runs: it
// leads the hook's process group.
func Started(f func(pid int)) Option { return func(o *options) { o.started = f } }

// Result is what a hook did.
type Result struct {
	Command  []string
	ExitCode int
	Output   string
	Duration time.Duration
}

// Run runs argv in dir with env and waits at most timeout. A non-zero exit is
// ErrFailed, an overrun ErrTimeout, the caller's ctx ending ErrInterrupted
// (wrapping ctx.Err()); each comes with the result.
func Run(parent context.Context, argv []string, dir string, env []string, timeout time.Duration, opts ...Option) (Result, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	res := Result{Command: argv, ExitCode: -1}
	if len(argv) == 0 {
		return res, fmt.Errorf("%w: empty command", ErrFailed)
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	// Its own process group, so a time-out ends everything it started;
	// and, where the system can, killed if this process dies, so no hook
	// outlives the service that ran it.
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = WaitDelay
	var out tail
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	// The parent-death signal follows the thread that forked the hook:
	// keep that thread for this goroutine until the hook ends, so it is
	// not the thread's end that kills it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := cmd.Start()
	if err == nil {
		if o.started != nil {
			o.started(cmd.Process.Pid)
		}
		err = cmd.Wait()
	}
	res.Duration, res.Output = time.Since(start), out.String()
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	name := strings.Join(argv, " ")
	switch {
	case parent.Err() != nil:
		return res, fmt.Errorf("%w: %s: %w", ErrInterrupted, name, parent.Err())
	case ctx.Err() == context.DeadlineExceeded:
		return res, fmt.Errorf("%w after %s: %s", ErrTimeout, timeout, name)
	case errors.Is(err, exec.ErrWaitDelay):
		return res, nil // it finished; a daemon it started still holds its output
	case err != nil && res.ExitCode > 0:
		return res, fmt.Errorf("%w: %s exited %d: %s", ErrFailed, name, res.ExitCode, lastLine(res.Output))
	case err != nil:
		return res, fmt.Errorf("%w: %s: %v", ErrFailed, name, err)
	}
	return res, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[len(s)-200:]
	}
	return s
}

// tail keeps the last MaxOutput bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
	cut bool
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - MaxOutput; over > 0 {
		t.buf, t.cut = append(t.buf[:0], t.buf[over:]...), true
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cut {
		return "…" + string(t.buf)
	}
	return string(t.buf)
}
