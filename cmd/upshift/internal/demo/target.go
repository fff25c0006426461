package demo

import (
	"context"
	_ "embed"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/upshift/upshift/pkg/hooks"
	"github.com/upshift/upshift/pkg/targets"
)

//go:embed ctl.sh
var ctlScript string

// TargetName is the name SetupTarget gives its target.
const TargetName = "demo"

// hookTimeout bounds each ctl call: start waits up to 5s for the app after
// a stop that may take 7s.
const hookTimeout = 20 * time.Second

// SetupTarget prepares root (releases/, logs/, run/ and the ctl script) for
// a demo app listening on 127.0.0.1:port, and returns the target's
// configuration. Defaults it leaves unset are filled by targets.New.
func SetupTarget(root string, port int) (targets.Target, error) {
	if port <= 0 || port > 65535 {
		return targets.Target{}, fmt.Errorf("set up demo target: port %d out of range", port)
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return targets.Target{}, fmt.Errorf("set up demo target: %w", err)
	}
	for _, d := range []string{"releases", "logs", "run"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return targets.Target{}, fmt.Errorf("set up demo target %s: %w", root, err)
		}
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	script := strings.NewReplacer("@ROOT@", shellQuote(root), "@ADDR@", addr).Replace(ctlScript)
	ctl := filepath.Join(root, "ctl")
	if err := os.WriteFile(ctl, []byte(script), 0o755); err != nil {
		return targets.Target{}, fmt.Errorf("set up demo target %s: %w", root, err)
	}
	// WriteFile keeps the mode of a file that already exists.
	if err := os.Chmod(ctl, 0o755); err != nil {
		return targets.Target{}, fmt.Errorf("set up demo target %s: %w", root, err)
	}
	base := "http://" + addr
	return targets.Target{
		Name: TargetName,
		Root: root,
		Hooks: targets.Hooks{
			Start: &targets.Hook{Command: []string{ctl, "start"}, Timeout: targets.Duration{Duration: hookTimeout}},
			Stop:  &targets.Hook{Command: []string{ctl, "stop"}, Timeout: targets.Duration{Duration: hookTimeout}},
		},
		Health: targets.Health{
			URL:        base + "/healthz",
			VersionURL: base + "/version",
			Interval:   targets.Duration{Duration: 200 * time.Millisecond},
			Successes:  3,
			Failures:   5,
		},
		Precheck: Precheck(),
		Keep:     3,
	}, nil
}

// checkTimeout bounds each of the demo's precheck checks.
const checkTimeout = 5 * time.Second

// Precheck is the demo target's environment checks on the host: a
// representative set that any machine running the demo meets. The network
// and dependency checks need something to reach; see WithDependency.
func Precheck() targets.Precheck {
	return targets.Precheck{
		Timeout:     targets.Duration{Duration: checkTimeout},
		MinFreeDisk: 10 << 20,
		MinMemory:   32 << 20,
		MinCPUs:     1,
		OS:          &targets.OSCheck{Names: []string{"linux", "darwin"}, Kernel: ">=3.10"},
	}
}

// WithDependency adds the checks of the dependency d to t: its port takes
// TCP connections, and its health answers UP.
func WithDependency(t targets.Target, d *Dependency) targets.Target {
	p := &t.Precheck
	p.Endpoints = append(p.Endpoints, targets.EndpointCheck{Name: DependencyName, Address: d.Addr,
		Timeout: targets.Duration{Duration: 2 * time.Second}})
	p.Dependencies = append(p.Dependencies, targets.DependencyCheck{Name: DependencyName, URL: d.URL,
		JSONField: "status", JSONValue: "UP"})
	return t
}

// Stop runs t's stop hook: the tear-down when the demo is interrupted.
func Stop(ctx context.Context, t targets.Target) error {
	h := t.Hooks.Stop
	if h == nil {
		return fmt.Errorf("stop demo target %s: no stop hook", t.Name)
	}
	timeout := h.Timeout.Duration
	if timeout <= 0 {
		timeout = hookTimeout
	}
	if _, err := hooks.Run(ctx, h.Command, t.Root, t.HookEnv(nil), timeout); err != nil {
		return fmt.Errorf("stop demo target %s: %w", t.Name, err)
	}
	return nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
