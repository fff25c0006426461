package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/promreg"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/pkg/testlog"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/coordinatord"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/kvstore"
	"github.com/upshift/upshift/services/coordinator/sagastore/pgstore"
)

// fast consumer settings for tests: a crashed handler's message comes back
// within a second or two.
var fast = consumer.Config{AckWait: 1500 * time.Millisecond, MaxDeliver: 10,
	Backoff: []time.Duration{20 * time.Millisecond, 100 * time.Millisecond}, Grace: 3 * time.Second}

// world is a NATS server, a store, phase services with scripted executors
// that count what they execute, and coordinators.
type world struct {
	t      testing.TB
	log    *slog.Logger // to the test's output
	nc     *nats.Conn
	js     jetstream.JetStream
	store  sagastore.Store
	spoil  func(ctx context.Context, id string) error
	reg    *prometheus.Registry
	url    string // of the NATS server, for coordinators run as processes
	policy coordinator.Policy
	cons   consumer.Config  // consumer settings of coordinators; default fast
	grace  time.Duration    // overdue grace of coordinators; default 30s
	clock  func() time.Time // of coordinators; default the real one
	relay  time.Duration    // relay interval of coordinators; default 500 ms
	marks  time.Duration    // mark delay of coordinators; default the default
	// concurrency of coordinators; default the default
	concurrency int
	// streams is how services and coordinators provision; default one
	// replica (three on a cluster).
	streams streams.Config
	// wrap, if set, wraps the store as coordinators see it (the test
	// reads the store unwrapped).
	wrap func(sagastore.Store) sagastore.Store
	// lease, if set, gives each coordinator its lease.
	lease func(name string) sagastore.Lease

	mu       sync.Mutex
	script   map[string]string // "phase.action.target" -> "fail" | "hang" | "error" | "panic" | "error-once" | "slow-once" (then "slow-done")
	executed map[string]int    // step id -> executions
	release  chan struct{}     // closing it ends every hang
}

// A storeOpener opens the saga store of a world whose NATS server js is.
type storeOpener func(t testing.TB, js jetstream.JetStream) opened

// opened is a saga store, and a way around it.
type opened struct {
	store sagastore.Store
	// spoil stores, behind the store's back, an active saga that the store
	// cannot decode, as another version of upshift or a botched manual
	// change might.
	spoil func(ctx context.Context, id string) error
}

// stores are the saga stores every coordinator scenario runs on.
var stores = []struct {
	name string
	open storeOpener
}{{"kv", openKV}, {"postgres", openPostgres}}

// forEachStore runs a scenario on every saga store, each in a parallel
// subtest with a world of its own.
func forEachStore(t *testing.T, scenario func(t *testing.T, open storeOpener)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			scenario(t, s.open)
		})
	}
}

// openKV opens the JetStream KV store on the world's server.
func openKV(t testing.TB, js jetstream.JetStream) opened { return openKVWith(t, js, streamsCfg) }

// openKVWith opens the JetStream KV store, provisioned as c says.
func openKVWith(t testing.TB, js jetstream.JetStream, c streams.Config) opened {
	store, err := kvstore.Open(context.Background(), js, c)
	if err != nil {
		t.Fatal(err)
	}
	return opened{store: store, spoil: func(ctx context.Context, id string) error {
		bucket, err := js.KeyValue(ctx, streams.SagasBucket)
		if err != nil {
			return err
		}
		_, err = bucket.Put(ctx, "saga."+id, []byte(`{"saga": {"id": "`+id+`", "state": 5}}`))
		return err
	}}
}

// openPostgres opens the PostgreSQL store on a database of the test's own.
func openPostgres(t testing.TB, _ jetstream.JetStream) opened {
	return openPostgresAt(t, pgtest.Database(t))
}

// openPostgresAt opens the PostgreSQL store on the database at url.
func openPostgresAt(t testing.TB, url string) opened {
	return opened{store: pgStore(t, url), spoil: func(ctx context.Context, id string) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		// Every column well formed and the saga listed as active; only its
		// document is wrong.
		_, err = conn.Exec(ctx, `INSERT INTO sagas (id, revision, state, kind, team, environment, software,
			from_version, to_version, digest, name, reason, batch, batches, created_at, updated_at, doc)
			VALUES ($1, 1, 'verifying', 'upgrade', 'platform', 'test', 'app', '1.0', '1.1', '', 'spoilt', '', 1, 1,
			now(), now(), $2)`, id, `{"id": "`+id+`", "state": 5}`)
		return err
	}}
}

// pgStore opens a PostgreSQL store on the database at url.
func pgStore(t testing.TB, url string) sagastore.Store {
	s, err := pgstore.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// newWorldOn starts a NATS server, opens the store on it and starts the
// phase services, serving targets.
func newWorldOn(t testing.TB, open storeOpener, targets ...string) *world {
	srv, js := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv)
	o := open(t, js)
	log := testlog.New(t)
	if _, bench := t.(*testing.B); bench {
		// A benchmark prints its log, and a line per step would be most of
		// what it measures (and of the heap it reports): errors only.
		log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	}
	w := &world{t: t, log: log, nc: nc, js: js, store: o.store, spoil: o.spoil, reg: prometheus.NewRegistry(),
		url: srv.URL(), script: map[string]string{}, executed: map[string]int{}, release: make(chan struct{})}
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
		events.Precheck: {events.ActionCheck}, events.Backup: {events.ActionArchive, events.ActionRestore},
		events.Deploy: {events.ActionApply, events.ActionRollback}, events.Verify: {events.ActionProbe},
	}
	for _, p := range events.Phases {
		svc := phase.New(w.js, phase.Config{Service: p, Targets: targets, Actions: actions[p], Consumer: fast,
			Streams: w.streams},
			phase.ExecutorFunc(w.execute), w.log, prometheus.NewRegistry())
		w.run(string(p), svc.Run)
		natstest.Eventually(w.t, natstest.Patience, string(p)+" ready", svc.Ready)
	}
}

func (w *world) execute(ctx context.Context, c events.Command, _ phase.Progress) (phase.Outcome, error) {
	w.mu.Lock()
	w.executed[c.Step]++
	n := w.executed[c.Step]
	key := fmt.Sprintf("%s.%s.%s", c.Phase, c.Action, c.Target)
	what := w.script[key]
	w.mu.Unlock()
	switch what {
	case "slow-once":
		// Past its ack wait, more than twice: the phase runtime's
		// heartbeats must keep the message from being delivered again.
		w.on(key, "slow-done")
		select {
		case <-time.After(3 * fast.AckWait):
		case <-ctx.Done():
			return phase.Outcome{}, ctx.Err()
		}
	case "error":
		return phase.Outcome{}, errors.New("disk on fire, every time")
	case "panic":
		panic("a bug in the executor")
	case "error-once":
		if n == 1 {
			return phase.Outcome{}, errors.New("disk busy")
		}
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

// coordinator starts one coordinator instance, built as its process builds
// it, on the world's store.
func (w *world) coordinator(name string) (*coordinator.Coordinator, func()) {
	cons := w.cons
	if cons.AckWait == 0 {
		cons = fast
	}
	relay := w.relay
	if relay == 0 {
		relay = 500 * time.Millisecond
	}
	store := w.store
	if w.wrap != nil {
		store = w.wrap(store)
	}
	var lease sagastore.Lease
	if w.lease != nil {
		lease = w.lease(name)
	}
	env := service.Env{Common: service.Common{Replicas: w.streams.Replicas}, Instance: name, Log: w.log, NC: w.nc, JS: w.js,
		Registry: w.reg}
	p, err := coordinatord.Build(context.Background(), env, coordinatord.Settings{Engine: coordinator.Config{Store: store,
		Consumer: cons, RelayInterval: relay, OverdueGrace: w.grace, Policy: w.policy, Now: w.clock, Lease: lease,
		MarkDelay: w.marks, Concurrency: w.concurrency}})
	if err != nil {
		w.t.Fatal(err)
	}
	stop := w.run(name, func(ctx context.Context) error { return service.Group(ctx, p.Components()) })
	natstest.Eventually(w.t, natstest.Patience, name+" ready", p.Coordinator.Ready)
	return p.Coordinator, stop
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

// drained fails the test unless the saga's outbox empties soon: every
// message its transitions stored was published and marked sent, or the
// relay would publish them again for ever.
func (w *world) drained(id string) {
	w.t.Helper()
	var pending int
	natstest.Eventually(w.t, natstest.Patience, "saga "+id+"'s outbox drained", func() bool {
		r, err := w.store.Load(context.Background(), id)
		if err != nil {
			return false
		}
		pending = len(r.Pending)
		return pending == 0
	})
	unsent, err := w.store.Unsent(context.Background(), 100)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, r := range unsent {
		if r.Saga.ID == id {
			w.t.Fatalf("saga %s listed unsent with %d pending", id, len(r.Pending))
		}
	}
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

// consumer returns the info of a consumer, nil if it cannot be read.
func (w *world) consumer(stream, name string) *jetstream.ConsumerInfo {
	ctx, cancel := context.WithTimeout(context.Background(), natstest.Patience)
	defer cancel()
	c, err := w.js.Consumer(ctx, stream, name)
	if err != nil {
		return nil
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil
	}
	return info
}

// acked waits until a consumer has acknowledged every message of its stream
// up to seq.
func (w *world) acked(stream, consumer string, seq uint64) {
	w.t.Helper()
	natstest.Eventually(w.t, natstest.Patience, fmt.Sprintf("%s to acknowledge %s #%d", consumer, stream, seq), func() bool {
		c := w.consumer(stream, consumer)
		return c != nil && c.AckFloor.Stream >= seq
	})
}

// idle waits until no consumer of the streams has a message waiting or
// unacknowledged: what was published to them has been handled.
func (w *world) idle(names ...string) {
	w.t.Helper()
	ctx := context.Background()
	for _, name := range names {
		natstest.Eventually(w.t, natstest.Patience, name+" handled", func() bool {
			stream, err := w.js.Stream(ctx, name)
			if err != nil {
				return false
			}
			list := stream.ListConsumers(ctx)
			for c := range list.Info() {
				if c.NumPending > 0 || c.NumAckPending > 0 {
					return false
				}
			}
			return list.Err() == nil
		})
	}
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
