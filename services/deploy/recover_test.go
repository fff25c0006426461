package deploy_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/services/deploy"
)

// What a hook left running when its service died (a process in the hook's
// group) is ended before the next hook runs on the target.
func TestALeftoverHookIsEndedBeforeTheNextOneRuns(t *testing.T) {
	t.Parallel()
	h := newHost(t, 0)
	h.installed("1.0")
	left := exec.Command("sleep", "60")
	left.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := left.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { left.Process.Kill() })
	exited := make(chan struct{})
	go func() { left.Wait(); close(exited) }()
	must(t, os.WriteFile(filepath.Join(h.root, deploy.HookFile), []byte(strconv.Itoa(left.Process.Pid)+"\n"), 0o644))
	if out := h.apply("1.0", "1.1"); out.Failed {
		t.Fatalf("apply %+v", out)
	}
	natstest.Eventually(t, natstest.Patience, "the leftover hook ended", func() bool {
		select {
		case <-exited:
			return true
		default:
			return false
		}
	})
	if _, err := os.Stat(filepath.Join(h.root, deploy.HookFile)); !os.IsNotExist(err) {
		t.Fatalf("hook record left after the apply: %v", err)
	}
}

// At start-up the executor starts a release an interrupted apply stopped,
// and leaves alone a target with nothing to finish.
func TestRecoverStartsWhatAnInterruptedApplyStopped(t *testing.T) {
	t.Parallel()
	h := newHost(t, 0)
	h.installed("1.0")
	if err := h.exec.Recover(context.Background()); err != nil || h.calls() != nil {
		t.Fatalf("nothing to recover, but: %v, calls %v", err, h.calls())
	}
	// Interrupted in its migrate hook: 1.0 stopped, the mark left.
	h.hang("migrate", "1.1")
	url, digest := h.pack("app-1.1", release("1.1"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.exec.Execute(ctx, command("apply", "1.0", "1.1", url, digest), func(string) {})
	}()
	natstest.Eventually(t, natstest.Patience, "the migrate hook hanging", func() bool {
		_, err := os.Stat(filepath.Join(h.dir, "flags", "hung"))
		return err == nil
	})
	cancel()
	<-done
	if _, err := os.Stat(filepath.Join(h.root, deploy.StoppedFile)); err != nil {
		t.Fatalf("no stopped mark: %v", err)
	}
	h.calls()
	if err := h.exec.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.calls(), "; "); got != "start 1.0 current=releases/1.0" {
		t.Fatalf("hook calls: %s", got)
	}
	if _, err := os.Stat(filepath.Join(h.root, deploy.StoppedFile)); !os.IsNotExist(err) {
		t.Fatalf("stopped mark left: %v", err)
	}
}
