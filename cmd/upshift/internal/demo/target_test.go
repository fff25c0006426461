package demo_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/cmd/upshift/internal/demo"
	"github.com/upshift/upshift/pkg/hooks"
	"github.com/upshift/upshift/pkg/targets"
)

// newTarget sets up a demo target on a free port and stops whatever it runs
// when the test ends.
func newTarget(t *testing.T) (targets.Target, int) {
	t.Helper()
	port := freePort(t)
	tgt, err := demo.SetupTarget(filepath.Join(t.TempDir(), "target"), port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := demo.Stop(context.Background(), tgt); err != nil {
			t.Errorf("clean-up: %v", err)
		}
	})
	return tgt, port
}

// install unpacks a package into releases/<version> as deploy would, and
// points current at it.
func install(t *testing.T, tgt targets.Target, a demo.Artifact) {
	t.Helper()
	version := a.Version
	f, err := os.Open(a.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(tgt.Release(version), h.Name)
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := os.OpenFile(dest, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, tr); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Remove(tgt.Current())
	if err := os.Symlink(filepath.Join("releases", version), tgt.Current()); err != nil {
		t.Fatal(err)
	}
}

func ctl(t *testing.T, tgt targets.Target, h *targets.Hook) (hooks.Result, error) {
	t.Helper()
	return hooks.Run(context.Background(), h.Command, tgt.Root, tgt.HookEnv(nil), h.Timeout.Duration)
}

func pidOf(t *testing.T, tgt targets.Target) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tgt.Root, "run", "app.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func noPidfile(t *testing.T, tgt targets.Target) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(tgt.Root, "run", "app.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pidfile left behind: %v", err)
	}
}

func TestSetupTarget(t *testing.T) {
	root := filepath.Join(t.TempDir(), "it's here")
	tgt, err := demo.SetupTarget(root, 18123)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"releases", "logs", "run"} {
		if st, err := os.Stat(filepath.Join(root, d)); err != nil || !st.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	ctlPath := filepath.Join(root, "ctl")
	if st, err := os.Stat(ctlPath); err != nil || st.Mode().Perm()&0o111 == 0 {
		t.Fatalf("ctl not executable: %v", err)
	}
	reg, err := targets.New(map[string]targets.Target{"demo": tgt}, "/")
	if err != nil {
		t.Fatal(err)
	}
	got, err := reg.Get("demo")
	if err != nil {
		t.Fatal(err)
	}
	if got.Root != root || strings.Join(got.Hooks.Start.Command, " ") != ctlPath+" start" ||
		strings.Join(got.Hooks.Stop.Command, " ") != ctlPath+" stop" ||
		got.Hooks.Start.Timeout.Duration != 20*time.Second || got.Hooks.Stop.Timeout.Duration != 20*time.Second {
		t.Errorf("root and hooks: %+v %+v %+v", got.Root, got.Hooks.Start, got.Hooks.Stop)
	}
	h := got.Health
	if h.URL != "http://127.0.0.1:18123/healthz" || h.VersionURL != "http://127.0.0.1:18123/version" ||
		h.Interval.Duration != 200*time.Millisecond || h.Successes != 3 || h.Failures != 5 {
		t.Errorf("health %+v", h)
	}
	if got.Keep != 3 || got.Precheck.MinFreeDisk != 10<<20 || got.Backup.Dir != filepath.Join(root, "backups") {
		t.Errorf("keep %d, min free disk %s, backups %s", got.Keep, got.Precheck.MinFreeDisk, got.Backup.Dir)
	}

	// Nothing installed: stop is a no-op, start says what is missing.
	if res, err := ctl(t, tgt, tgt.Hooks.Stop); err != nil {
		t.Errorf("stop with nothing running: %v: %s", err, res.Output)
	}
	res, err := ctl(t, tgt, tgt.Hooks.Start)
	if !errors.Is(err, hooks.ErrFailed) || !strings.Contains(res.Output, "current") {
		t.Errorf("start with nothing installed: %v: %s", err, res.Output)
	}

	if _, err := demo.SetupTarget(t.TempDir(), 0); err == nil {
		t.Error("accepted port 0")
	}
}

func TestCtlStartServesAndStopLeavesNothing(t *testing.T) {
	tgt, port := newTarget(t)
	install(t, tgt, builtApps(t).pkg11)
	base := "http://127.0.0.1:" + strconv.Itoa(port)

	if res, err := ctl(t, tgt, tgt.Hooks.Start); err != nil {
		t.Fatalf("start: %v: %s", err, res.Output)
	}
	first := pidOf(t, tgt)
	if code, body := get(t, base+"/version"); code != 200 || !strings.Contains(body, `"1.1"`) {
		t.Fatalf("/version = %d %q", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}

	// Start again replaces the running instance.
	if res, err := ctl(t, tgt, tgt.Hooks.Start); err != nil {
		t.Fatalf("second start: %v: %s", err, res.Output)
	}
	pid := pidOf(t, tgt)
	if pid == first || alive(first) {
		t.Errorf("second start: pid %d, first pid %d alive %v", pid, first, alive(first))
	}

	if res, err := ctl(t, tgt, tgt.Hooks.Stop); err != nil {
		t.Fatalf("stop: %v: %s", err, res.Output)
	}
	if alive(pid) {
		t.Errorf("pid %d still runs after stop", pid)
	}
	noPidfile(t, tgt)
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
		c.Close()
		t.Error("port still answers after stop")
	}
	res, err := ctl(t, tgt, tgt.Hooks.Stop)
	if err != nil || !strings.Contains(res.Output, "not running") {
		t.Errorf("second stop: %v: %s", err, res.Output)
	}

	log, err := os.ReadFile(filepath.Join(tgt.Root, "logs", "app.log"))
	if err != nil || !strings.Contains(string(log), "demo-app listening") || !strings.Contains(string(log), "demo-app stopped") {
		t.Errorf("app log: %v: %s", err, log)
	}
}

func TestCtlStartsUnhealthyVersion(t *testing.T) {
	tgt, port := newTarget(t)
	install(t, tgt, builtApps(t).pkg12)

	// Listening is enough for start: failing /healthz is verify's to find.
	if res, err := ctl(t, tgt, tgt.Hooks.Start); err != nil {
		t.Fatalf("start: %v: %s", err, res.Output)
	}
	pid := pidOf(t, tgt)
	if code, body := get(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/healthz"); code != 503 {
		t.Errorf("/healthz = %d %q, want 503", code, body)
	}
	if err := demo.Stop(context.Background(), tgt); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Errorf("pid %d still runs after demo.Stop", pid)
	}
	noPidfile(t, tgt)
}

func TestCtlStartFailsWhenAppExits(t *testing.T) {
	tgt, _ := newTarget(t)
	// An app that dies at once; its probe mode is the real app's, so start
	// has to notice the death itself.
	real := builtApps(t).healthy11
	bin := filepath.Join(t.TempDir(), "demo-app")
	script := "#!/bin/sh\ncase ${1:-} in --probe) exec '" + real + "' \"$@\";; esac\necho boom >&2\nexit 3\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := demo.Package(t.TempDir(), "0.9", bin)
	if err != nil {
		t.Fatal(err)
	}
	install(t, tgt, a)

	res, err := ctl(t, tgt, tgt.Hooks.Start)
	if !errors.Is(err, hooks.ErrFailed) || res.ExitCode == 0 {
		t.Fatalf("start of an app that exits: %v (exit %d), want a failure", err, res.ExitCode)
	}
	if !strings.Contains(res.Output, "exited") || !strings.Contains(res.Output, "boom") {
		t.Errorf("start output does not say why: %s", res.Output)
	}
	noPidfile(t, tgt)
}

func TestCtlStartFailsWhenPortIsTaken(t *testing.T) {
	tgt, port := newTarget(t)
	install(t, tgt, builtApps(t).pkg11)
	// Someone else answers on the port: start must not take that for the app.
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	res, err := ctl(t, tgt, tgt.Hooks.Start)
	if !errors.Is(err, hooks.ErrFailed) {
		t.Fatalf("start on a taken port: %v, want a failure: %s", err, res.Output)
	}
	if !strings.Contains(res.Output, "address already in use") {
		t.Errorf("start output does not say why: %s", res.Output)
	}
	noPidfile(t, tgt)
}

func TestFreePort(t *testing.T) {
	port := freePort(t)
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("port %d not free: %v", port, err)
	}
	ln.Close()
}
