package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/promreg"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/kvstore"
)

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// fast consumer settings for tests: a crashed handler's message comes back
// within a second or two.
var fast = consumer.Config{AckWait: 1500 * time.Millisecond, MaxDeliver: 10,
	Backoff: []time.Duration{20 * time.Millisecond, 100 * time.Millisecond}, Grace: 3 * time.Second}

// world is a NATS server, a store, phase services with scripted executors
// that count what they execute, and coordinators.
type world struct {
	t      testing.TB
	nc     *nats.Conn
	js     jetstream.JetStream
	store  sagastore.Store
	reg    *prometheus.Registry
	url    string // of the NATS server, for coordinators run as processes
	policy coordinator.Policy
	gauge  time.Duration    // in-flight gauge refresh of coordinators; default 200ms
	cons   consumer.Config  // consumer settings of coordinators; default fast
	grace  time.Duration    // overdue grace of coordinators; default 30s
	clock  func() time.Time // of coordinators; default the real one

	mu       sync.Mutex
	script   map[string]string // "phase.action.target" -> "fail" | "hang"
	executed map[string]int    // step id -> executions
	release  chan struct{}     // closing it ends every hang
}

func newWorld(t testing.TB, targets ...string) *world {
	return newWorldOn(t, func(js jetstream.JetStream) sagastore.Store {
		store, err := kvstore.Open(context.Background(), js, streamsCfg)
		if err != nil {
			t.Fatal(err)
		}
		return store
	}, targets...)
}

// newWorldOn is newWorld with the store open returns.
func newWorldOn(t testing.TB, open func(jetstream.JetStream) sagastore.Store, targets ...string) *world {
	srv, js := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv)
	w := &world{t: t, nc: nc, js: js, store: open(js), reg: prometheus.NewRegistry(), url: srv.URL(),
		script: map[string]string{}, executed: map[string]int{}, release: make(chan struct{})}
	t.Cleanup(func() { close(w.release) })
	w.services(targets...)
	return w
}

// run starts a goroutine until the test ends (or stop is called).
func (w *world) run(name string, fn func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			w.t.Errorf("%s: %v", name, err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	w.t.Cleanup(stop)
	return stop
}

func (w *world) services(targets ...string) {
	actions := map[events.Phase][]events.Action{
		events.Precheck: {events.Check}, events.Backup: {events.Archive, events.Restore},
		events.Deploy: {events.Apply, events.Rollback}, events.Verify: {events.Probe},
	}
	for _, p := range events.Phases {
		svc := phase.New(w.js, phase.Config{Service: p, Targets: targets, Actions: actions[p], Consumer: fast},
			phase.ExecutorFunc(w.execute), quiet, prometheus.NewRegistry())
		w.run(string(p), svc.Run)
		natstest.Eventually(w.t, natstest.Patience, string(p)+" ready", svc.Ready)
	}
}

func (w *world) execute(ctx context.Context, c events.Command, _ phase.Progress) (phase.Outcome, error) {
	w.mu.Lock()
	w.executed[c.Step]++
	what := w.script[fmt.Sprintf("%s.%s.%s", c.Phase, c.Action, c.Target)]
	w.mu.Unlock()
	switch what {
	case "fail":
		return phase.Failure("scripted", errors.New("scripted failure")), nil
	case "hang":
		select {
		case <-w.release:
		case <-ctx.Done():
		}
		return phase.Outcome{}, errors.New("released")
	}
	return phase.Success(map[string]string{"by": "test"}), nil
}

func (w *world) on(key, what string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.script[key] = what
}

// coordinator starts one coordinator instance.
func (w *world) coordinator(name string) (*coordinator.Coordinator, func()) {
	gauge := w.gauge
	if gauge == 0 {
		gauge = 200 * time.Millisecond
	}
	cons := w.cons
	if cons.AckWait == 0 {
		cons = fast
	}
	c := coordinator.New(w.nc, w.js, coordinator.Config{Instance: name, Store: w.store, Streams: streamsCfg,
		Consumer: cons, RelayInterval: 500 * time.Millisecond, GaugeInterval: gauge, OverdueGrace: w.grace, Policy: w.policy, Now: w.clock}, quiet, w.reg)
	stop := w.run(name, c.Run)
	natstest.Eventually(w.t, natstest.Patience, name+" ready", c.Ready)
	return c, stop
}

func request(env string, targets ...string) spec.Request {
	return spec.Request{
		APIVersion: spec.APIVersion, Kind: spec.KindUpgrade,
		Metadata: spec.Metadata{Name: "test run", Team: "platform", Environment: env},
		Spec: spec.Spec{Software: "app", From: "1.0", To: "1.1", Targets: targets, Notify: []string{"dba"},
			Artifact: spec.Artifact{URL: "file:///app.tgz", Digest: "sha256:" + strings.Repeat("a", 64)},
			// Long enough that no step of a loaded test run expires; a test
			// of time-outs sets its own.
			Timeouts: spec.Timeouts{Precheck: sec(30), Backup: sec(30), Deploy: sec(30), Verify: sec(30), Rollback: sec(30)}},
	}
}

func sec(n int) spec.Duration { return spec.Duration{Duration: time.Duration(n) * time.Second} }

// submit publishes a request as `upshift submit` does; it returns the id.
func (w *world) submit(r spec.Request) string {
	id := uuid.Must(uuid.NewV7()).String()
	w.publish(events.RequestSubject(r.Metadata.Team), id, events.TypeRequest, r)
	return id
}

func (w *world) publish(subject, id, typ string, data any) {
	env, err := events.New(id, typ, "test", "", 0, time.Now(), data)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := bus.Publish(context.Background(), w.js, subject, env); err != nil {
		w.t.Fatal(err)
	}
}

// wait returns the saga once it is in a terminal state (or want, if given).
func (w *world) wait(id string, within time.Duration, want ...saga.State) saga.Saga {
	w.t.Helper()
	var s saga.Saga
	natstest.Eventually(w.t, within, "saga "+id+" to end", func() bool {
		r, err := w.store.Load(context.Background(), id)
		if err != nil {
			return false
		}
		s = r.Saga
		if len(want) > 0 {
			for _, st := range want {
				if s.State == st {
					return true
				}
			}
			return false
		}
		return s.State.Terminal()
	})
	return s
}

// sagaEvents returns the kinds of the coordinator's events about a saga.
func (w *world) sagaEvents(id string) []string {
	var kinds []string
	for _, e := range natstest.ReadEvents[events.SagaEvent](w.t, w.js, events.StreamEvents, events.SagaSubject(id, ">"), events.TypeSaga) {
		kinds = append(kinds, e.Kind)
	}
	return kinds
}

func (w *world) executions() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for k, v := range w.executed {
		out[k] = v
	}
	return out
}

func commands(s saga.Saga) []string {
	var out []string
	for _, st := range s.Steps {
		out = append(out, fmt.Sprintf("%s.%s.%s:%s", st.Phase, st.Action, st.Target, st.Status))
	}
	return out
}

// metric reads a counter or gauge of the coordinators' registry: the
// series with the given labels (name/value pairs).
func (w *world) metric(name string, labels ...string) float64 {
	v, err := promreg.Value(w.reg, name, labels...)
	if err != nil {
		w.t.Fatal(err)
	}
	return v
}
