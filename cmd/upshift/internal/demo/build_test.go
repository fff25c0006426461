package demo_test

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/upshift/upshift/cmd/upshift/internal/demo"
)

func TestBuiltAppsServe(t *testing.T) {
	b := builtApps(t)
	for _, tc := range []struct {
		bin, version string
		health       int
		healthBody   string
	}{
		{b.healthy11, "1.1", 200, "ok\n"},
		{b.unhealthy12, "1.2", 503, "unhealthy: " + demo.UnhealthyReason + "\n"},
	} {
		t.Run(tc.version, func(t *testing.T) {
			addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
			cmd := exec.Command(tc.bin, "--addr", addr)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-done
			})
			// The app's own probe mode is what the ctl script waits with.
			probe := exec.Command(tc.bin, "--probe", "http://"+addr+"/healthz", "--wait", "5s",
				"--pid", strconv.Itoa(cmd.Process.Pid))
			if out, err := probe.CombinedOutput(); err != nil {
				t.Fatalf("probe: %v: %s", err, out)
			}

			if code, body := get(t, "http://"+addr+"/healthz"); code != tc.health || body != tc.healthBody {
				t.Errorf("/healthz = %d %q, want %d %q", code, body, tc.health, tc.healthBody)
			}
			code, body := get(t, "http://"+addr+"/version")
			var v struct{ Version string }
			if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil || v.Version != tc.version {
				t.Errorf("/version = %d %q (%v), want version %s", code, body, err, tc.version)
			}
			if code, body := get(t, "http://"+addr+"/"); code != 200 || !strings.Contains(body, tc.version) {
				t.Errorf("/ = %d %q, want a greeting with %s", code, body, tc.version)
			}
			if code, _ := get(t, "http://"+addr+"/nope"); code != 404 {
				t.Errorf("/nope = %d, want 404", code)
			}

			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				done <- err // for the clean-up
				if err != nil {
					t.Fatalf("after SIGTERM: %v, want a clean exit", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("still running 10s after SIGTERM")
			}
		})
	}
}

func TestProbeFailsWithoutServer(t *testing.T) {
	b := builtApps(t)
	url := "http://127.0.0.1:" + strconv.Itoa(freePort(t)) + "/healthz"
	err := exec.Command(b.healthy11, "--probe", url).Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("probe of a closed port: %v, want exit status 1", err)
	}
}

// Not parallel: t.Setenv changes PATH for the whole process.
func TestBuildAppRefuses(t *testing.T) {
	if _, err := demo.BuildApp(context.Background(), t.TempDir(), "../1.1", true); !errors.Is(err, demo.ErrBadVersion) {
		t.Errorf("version ../1.1: %v, want ErrBadVersion", err)
	}
	t.Setenv("PATH", t.TempDir())
	_, err := demo.BuildApp(context.Background(), t.TempDir(), "1.1", true)
	if !errors.Is(err, demo.ErrNoGo) || !strings.Contains(err.Error(), "install Go") {
		t.Errorf("without go on PATH: %v, want ErrNoGo saying what to install", err)
	}
}
