package hooks_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/hooks"
	"github.com/upshift/upshift/pkg/natstest"
)

func TestRunCapturesOutputAndEnvInDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	res, err := hooks.Run(context.Background(), []string{"sh", "-c", `echo "in $(pwd) as $WHO"; echo oops >&2`},
		dir, []string{"WHO=deploy", "PATH=" + os.Getenv("PATH")}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || !strings.Contains(res.Output, "in "+dir+" as deploy") || !strings.Contains(res.Output, "oops") {
		t.Fatalf("result %+v", res)
	}
}

func TestNonZeroExitIsFailedWithTheLastLine(t *testing.T) {
	t.Parallel()
	res, err := hooks.Run(context.Background(), []string{"sh", "-c", "echo starting; echo 'port 8080 in use'; exit 3"}, "", nil, 5*time.Second)
	if !errors.Is(err, hooks.ErrFailed) || res.ExitCode != 3 || !strings.HasSuffix(err.Error(), "exited 3: port 8080 in use") {
		t.Fatalf("err %v, result %+v", err, res)
	}
	if _, err := hooks.Run(context.Background(), []string{"/nonexistent/hook"}, "", nil, time.Second); !errors.Is(err, hooks.ErrFailed) {
		t.Fatalf("missing binary: %v", err)
	}
}

func TestTimeoutKillsTheWholeProcessGroup(t *testing.T) {
	t.Parallel()
	pidfile := filepath.Join(t.TempDir(), "child.pid")
	start := time.Now()
	// A time-out long enough for sh to write the pid file on a busy machine.
	_, err := hooks.Run(context.Background(), []string{"sh", "-c", "sleep 60 & echo $! > " + pidfile + "; wait"}, "", nil, 2*time.Second)
	if !errors.Is(err, hooks.ErrTimeout) {
		t.Fatalf("err %v", err)
	}
	// Not killed, it would run its 60 seconds.
	if time.Since(start) > 30*time.Second {
		t.Fatalf("took %s", time.Since(start))
	}
	pid := readPid(t, pidfile)
	// Killed, the orphan stays a zombie until init reaps it: that is dead.
	natstest.Eventually(t, natstest.Patience, fmt.Sprintf("child %d killed with its hook", pid), func() bool {
		return !running(pid)
	})
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		t.Fatalf("pid file %q: %v", b, err)
	}
	return pid
}

// running reports whether pid is a process that is neither gone nor a
// zombie.
func running(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestDaemonWithRedirectedOutputDoesNotHoldTheHook(t *testing.T) {
	t.Parallel()
	pidfile := filepath.Join(t.TempDir(), "d.pid")
	start := time.Now()
	_, err := hooks.Run(context.Background(), []string{"sh", "-c", "nohup sleep 30 >/dev/null 2>&1 & echo $! > " + pidfile}, "", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Held by the daemon, the hook would end only at WaitDelay.
	if took := time.Since(start); took >= hooks.WaitDelay {
		t.Fatalf("hook held for %s by its daemon", took)
	}
	syscall.Kill(readPid(t, pidfile), syscall.SIGKILL)
}

func TestCallerCancellationIsAnInterruptionNotAFailure(t *testing.T) {
	t.Parallel()
	started := filepath.Join(t.TempDir(), "started")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancelled while the hook runs, not before it starts.
	go func() {
		for deadline := time.Now().Add(natstest.Patience); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(started); err == nil {
				break
			}
		}
		cancel()
	}()
	_, err := hooks.Run(ctx, []string{"sh", "-c", "touch " + started + "; sleep 10"}, "", nil, time.Minute)
	if !errors.Is(err, hooks.ErrInterrupted) || !errors.Is(err, context.Canceled) || errors.Is(err, hooks.ErrFailed) {
		t.Fatalf("err %v", err)
	}
}
