// Package e2e_test runs upshift end to end: the real services, the demo
// application as real processes on a local target, an embedded NATS server.
package e2e_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/upshift/upshift/cmd/upshift/internal/demo"
	"github.com/upshift/upshift/cmd/upshift/internal/devstack"
	"github.com/upshift/upshift/cmd/upshift/internal/view"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/promreg"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/pkg/testlog"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/coordinatord"
)

// artifacts of the demo application, built once for every test.
var artifacts map[string]demo.Artifact

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips: no demo to build
	}
	dir, err := os.MkdirTemp("", "upshift-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	artifacts, err = devstack.BuildArtifacts(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "build the demo application:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// endToEnd marks a test of the whole stack: long, so skipped under -short,
// and run in parallel with the others, each with a server, a target, ports
// and a database of its own.
func endToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("long: runs the demo application end to end")
	}
	t.Parallel()
}

// fast makes a crashed or failing handler's message come back quickly.
var fast = consumer.Config{AckWait: 2 * time.Second, MaxDeliver: 5,
	Backoff: []time.Duration{50 * time.Millisecond, 200 * time.Millisecond}, Grace: 5 * time.Second}

type rig struct {
	t *testing.T
	d *devstack.Demo
	s *devstack.Stack
}

// newRig sets up a target running version installed ("": an empty target)
// and starts the stack.
func newRig(t *testing.T, installed string) *rig {
	return newRigWith(t, installed, coordinator.Policy{})
}

// newRigWith is newRig with a coordinator policy, and changes to the
// target's configuration.
func newRigWith(t *testing.T, installed string, policy coordinator.Policy, tune ...func(*targets.Target)) *rig {
	return newRigOn(t, "", installed, policy, tune...)
}

// newRigOn is newRigWith on the PostgreSQL database at url ("": JetStream KV).
func newRigOn(t *testing.T, databaseURL, installed string, policy coordinator.Policy, tune ...func(*targets.Target)) *rig {
	return newRigStack(t, databaseURL, installed, policy, nil, tune...)
}

// newRigLogged is newRigOn with the stack logging to log.
func newRigLogged(t *testing.T, log *slog.Logger, databaseURL, installed string, policy coordinator.Policy, tune ...func(*targets.Target)) *rig {
	return newRigStack(t, databaseURL, installed, policy, func(o *devstack.Options) { o.Log = log }, tune...)
}

// newRigAnalysed is newRigWith whose verify service's analyses query the
// Prometheus at promURL.
func newRigAnalysed(t *testing.T, promURL, installed string, policy coordinator.Policy, tune ...func(*targets.Target)) *rig {
	return newRigStack(t, "", installed, policy, func(o *devstack.Options) { o.PrometheusURL = promURL }, tune...)
}

// newRigStack is newRigOn with changes to the stack's options.
func newRigStack(t *testing.T, databaseURL, installed string, policy coordinator.Policy, stack func(*devstack.Options), tune ...func(*targets.Target)) *rig {
	d, err := devstack.NewDemo(t.TempDir(), artifacts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range tune {
		f(&d.Target)
	}
	if d.Registry, err = targets.New(map[string]targets.Target{d.Target.Name: d.Target}, d.Dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Teardown(context.Background()) })
	if installed != "" {
		if err := d.Install(context.Background(), installed); err != nil {
			t.Fatal(err)
		}
	}
	o := devstack.Options{Dir: t.TempDir(), Targets: d.Registry,
		Consumer: fast, ArtifactSources: d.Sources(), Log: testlog.New(t),
		Coordinator: coordinatord.Settings{Store: store(databaseURL), DatabaseURL: service.Secret(databaseURL),
			Engine: coordinator.Config{Consumer: fast, RelayInterval: 500 * time.Millisecond, Policy: policy}}}
	if stack != nil {
		stack(&o)
	}
	s, err := devstack.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return &rig{t: t, d: d, s: s}
}

// run submits a request and returns its id and the event that ended it.
func (r *rig) run(req spec.Request) (string, events.SagaEvent) {
	r.t.Helper()
	return r.end(r.submit(req))
}

func (r *rig) submit(req spec.Request) string {
	r.t.Helper()
	id, err := r.s.Client.Submit(context.Background(), req)
	if err != nil {
		r.t.Fatal(err)
	}
	return id
}

// end waits for a saga to end.
func (r *rig) end(id string) (string, events.SagaEvent) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	end, err := view.Watch(ctx, r.s.JS, id, nil)
	if err != nil {
		r.t.Fatalf("saga %s: %v (stack: %v)", id, err, r.s.Err())
	}
	return id, end
}

func (r *rig) serving() string {
	r.t.Helper()
	v, err := r.d.Serving(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	var body struct{ Version string }
	if err := json.Unmarshal([]byte(v), &body); err != nil {
		r.t.Fatalf("version answer %q: %v", v, err)
	}
	return body.Version
}

// reach waits until a saga is in state. The phases before it are bounded
// only by the request's time-outs, and on a loaded machine the backup alone
// (gzip of the demo's binary, under the race detector) can take 30s: reach
// waits as long as end does, and fails at once if the saga ends first.
func (r *rig) reach(id string, state saga.State) saga.Saga {
	r.t.Helper()
	var v api.View
	var err error
	natstest.Eventually(r.t, 2*time.Minute, "saga "+id+" "+string(state), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if v, err = r.s.Client.Get(ctx, id); err != nil {
			return false
		}
		if s := v.Saga.State; s != state && s.Terminal() {
			r.t.Fatalf("saga %s ended %s (%s) before it was seen %s", id, s, v.Saga.Reason, state)
		}
		return v.Saga.State == state
	})
	return v.Saga
}

// metric sums the series of a metric whose labels include every pair given.
func (r *rig) metric(name string, labels ...string) float64 {
	v, err := promreg.Value(r.s.Registry, name, labels...)
	if err != nil {
		r.t.Fatal(err)
	}
	return v
}

func store(databaseURL string) string {
	if databaseURL == "" {
		return coordinatord.StoreKV
	}
	return coordinatord.StorePostgres
}
