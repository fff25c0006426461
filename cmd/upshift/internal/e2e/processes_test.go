package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/cmd/upshift/internal/demo"
	"github.com/upshift/upshift/cmd/upshift/internal/devstack"
	"github.com/upshift/upshift/cmd/upshift/internal/view"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natsembed"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/deploy"
)

var services = []string{"coordinator", "precheck", "backup", "deploy", "verify", "notify"}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds the CLI, the six services' mains and the agent once for
// the package.
func binaries(t *testing.T) string {
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "upshift-bin-")
		if buildErr != nil {
			return
		}
		root, _ := filepath.Abs("../../../..")
		args := []string{"build", "-o", binDir + "/", "./cmd/upshift", "./services/agent/cmd/upshift-agent"}
		for _, s := range services {
			args = append(args, fmt.Sprintf("./services/%s/cmd/upshift-%s", s, s))
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// cluster is one embedded NATS server and the six services as processes
// (or the coordinator, notify and an agent).
type cluster struct {
	t       *testing.T
	srv     *natsembed.Server
	js      jetstream.JetStream
	client  *api.Client
	d       *devstack.Demo
	dir     string
	targets string
	procs   map[string]*exec.Cmd
	ops     map[string]string
	// auth, if set, gives a process its NATS identity: arguments, and
	// environment variables (UPSHIFT_*) for what must not be in them.
	auth func(name string) (args, env []string)
}

func newCluster(t *testing.T, tune ...func(*targets.Target)) *cluster {
	srv := natstest.Server(t)
	nc, js := natstest.Connect(t, srv)
	return startCluster(t, srv, nc, js, services, nil, tune...)
}

// startCluster runs the processes names against srv, each with its
// identity from auth (nil: none); nc is the test's connection.
func startCluster(t *testing.T, srv *natsembed.Server, nc *nats.Conn, js jetstream.JetStream, names []string,
	auth func(string) ([]string, []string), tune ...func(*targets.Target)) *cluster {
	d, err := devstack.NewDemo(t.TempDir(), artifacts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Teardown(context.Background()) })
	if err := d.Install(context.Background(), "1.0"); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, srv: srv, js: js, client: api.NewClient(nc), d: d, dir: t.TempDir(), procs: map[string]*exec.Cmd{}, ops: map[string]string{}, auth: auth}
	tuned := d.Target
	for _, f := range tune {
		f(&tuned)
	}
	b, _ := json.Marshal(targets.File{Targets: map[string]targets.Target{demo.TargetName: tuned}})
	c.targets = filepath.Join(c.dir, "targets.json")
	if err := os.WriteFile(c.targets, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, s := range names {
		c.start(s)
	}
	for _, s := range names {
		c.ready(s)
	}
	return c
}

// start runs one service's main, its output in a log file of the test.
func (c *cluster) start(name string) {
	port, err := demo.FreePort()
	if err != nil {
		c.t.Fatal(err)
	}
	c.ops[name] = fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{"--nats-url", c.srv.URL(), "--ops-addr", c.ops[name], "--log-format", "text", "--instance", name + "@test"}
	switch name {
	case "precheck", "deploy", "agent":
		args = append(args, "--targets", c.targets, "--artifact-dir", filepath.Join(c.dir, "artifacts-"+name),
			"--artifact-sources", strings.Join(c.d.Sources(), ","))
	case "backup", "verify":
		args = append(args, "--targets", c.targets)
	case "coordinator":
		// No HTTP API: its default port is one for every test running.
		args = append(args, "--relay-interval", "1s", "--http-addr", "")
	}
	log, err := os.OpenFile(filepath.Join(c.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binaries(c.t), "upshift-"+name), args...)
	cmd.Stdout, cmd.Stderr = log, log
	if c.auth != nil {
		more, env := c.auth(name)
		cmd.Args = append(cmd.Args, more...)
		cmd.Env = append(os.Environ(), env...)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.procs[name] = cmd
	c.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			c.t.Errorf("%s did not stop within 15s of SIGTERM", name)
		}
		log.Close()
		if c.t.Failed() {
			b, _ := os.ReadFile(log.Name())
			c.t.Logf("%s log:\n%s", name, b)
		}
	})
}

// ready waits for a service's /readyz.
func (c *cluster) ready(name string) {
	natstest.Eventually(c.t, 30*time.Second, name+" ready", func() bool {
		resp, err := http.Get("http://" + c.ops[name] + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// kill ends a service at once, as a crash would.
func (c *cluster) kill(name string) {
	if err := c.procs[name].Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	c.procs[name].Wait()
}

func (c *cluster) serving() string {
	r := &rig{t: c.t, d: c.d}
	return r.serving()
}

func TestSixServicesAsProcessesUpgrade(t *testing.T) {
	endToEnd(t)
	c := newCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := c.client.Submit(ctx, c.d.Request("1.0", "1.1"))
	if err != nil {
		t.Fatal(err)
	}
	end, err := view.Watch(ctx, c.js, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if end.Kind != string(saga.StateSucceeded) || c.serving() != "1.1" {
		t.Fatalf("saga %s ended %s (%s), serving %s", id, end.Kind, end.Reason, c.serving())
	}
}

func TestCoordinatorKilledMidSagaFinishesItAfterRestart(t *testing.T) {
	endToEnd(t)
	c := newCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := c.client.Submit(ctx, c.d.Request("1.0", "1.1"))
	if err != nil {
		t.Fatal(err)
	}
	// Kill it with SIGKILL at the backup's first report (started, or its
	// result if it was quick: phase.DefaultStartedAfter), let the
	// services report to nobody until a report waits for the coordinator,
	// then start a new one.
	var once sync.Once
	end, err := view.Watch(ctx, c.js, id, func(b []byte) {
		env, _ := events.Decode(b)
		var r events.StepResult
		if env.Type == events.TypeStep && json.Unmarshal(env.Data, &r) == nil && r.Phase == events.Backup {
			once.Do(func() {
				c.kill("coordinator")
				natstest.Eventually(t, natstest.Patience, "a report waiting for the coordinator", func() bool {
					cons, err := c.js.Consumer(ctx, events.StreamEvents, "coordinator-results")
					if err != nil {
						return false
					}
					info, err := cons.Info(ctx)
					return err == nil && info.NumPending+uint64(info.NumAckPending) > 0
				})
				c.start("coordinator")
			})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if end.Kind != string(saga.StateSucceeded) || c.serving() != "1.1" {
		t.Fatalf("saga %s ended %s (%s), serving %s", id, end.Kind, end.Reason, c.serving())
	}
	// The apply ran once: the application was started twice in all, for
	// the 1.0 install and for 1.1. (Counting reports would prove nothing:
	// the stream keeps one copy of each id however often it is published.)
	log, err := os.ReadFile(filepath.Join(c.d.Target.Root, "logs", "app.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), "listening"); n != 2 {
		t.Fatalf("the application was started %d times, want 2:\n%s", n, log)
	}
}

// A deploy service killed between the stop and the start of an apply
// (here in a long migrate hook) serves the target again at its restart: it
// starts the release it had stopped at once, not when the apply is
// delivered again an ack wait later; and the hook it was running died with
// it.
func TestADeployKilledBetweenStopAndStartServesAgainAtRestart(t *testing.T) {
	endToEnd(t)
	c := newCluster(t, func(tg *targets.Target) {
		tg.Hooks.Migrate = &targets.Hook{Command: []string{"sleep", "45"}, Timeout: targets.Duration{Duration: time.Minute}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.client.Submit(ctx, c.d.Request("1.0", "1.1")); err != nil {
		t.Fatal(err)
	}
	root := c.d.Target.Root
	var hook int
	natstest.Eventually(t, time.Minute, "the migrate hook running after the stop", func() bool {
		b, err := os.ReadFile(filepath.Join(root, deploy.HookFile))
		_, serr := os.Stat(filepath.Join(root, deploy.StoppedFile))
		if err != nil || serr != nil {
			return false
		}
		if hook, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			return false
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", hook))
		return err == nil && strings.HasPrefix(string(cmdline), "sleep\x0045") // the migrate hook, not the stop
	})
	if _, err := c.d.Serving(ctx); err == nil {
		t.Fatal("the target serves while stopped")
	}
	c.kill("deploy")
	natstest.Eventually(t, natstest.Patience, "the hook gone with its service", func() bool { return syscall.Kill(hook, 0) != nil })
	c.start("deploy")
	natstest.Eventually(t, 20*time.Second, "the target serving again well within the ack wait (30s)", func() bool {
		_, err := c.d.Serving(ctx)
		return err == nil
	})
}
