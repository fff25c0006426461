package hooks_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/hooks"
	"github.com/upshift/upshift/pkg/natstest"
)

// helperEnv makes the test binary a process that runs one hook and waits:
// a service that will be killed.
const helperEnv = "UPSHIFT_HOOKS_TEST_HELPER"

func TestHelperProcessRunsAHook(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("only as the helper process of TestAHookDiesWithTheProcessThatRanIt")
	}
	script := `echo $$ > hook.pid.tmp && mv hook.pid.tmp hook.pid && exec sleep 60`
	hooks.Run(context.Background(), []string{"sh", "-c", script}, dir, nil, time.Minute)
}

// A service killed with SIGKILL takes its running hook with it: no hook
// outlives the process that ran it, to run beside the next one.
func TestAHookDiesWithTheProcessThatRanIt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	helper := exec.Command(os.Args[0], "-test.run=^TestHelperProcessRunsAHook$", "-test.count=1")
	helper.Env = append(os.Environ(), helperEnv+"="+dir)
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	natstest.Eventually(t, natstest.Patience, "the hook running", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "hook.pid"))
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	helper.Wait()
	natstest.Eventually(t, natstest.Patience, "the hook gone with the process that ran it", func() bool {
		return syscall.Kill(pid, 0) != nil
	})
}
