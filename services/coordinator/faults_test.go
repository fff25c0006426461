package coordinator_test

import (
	"context"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/testlog"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// faultSagas is how many sagas a fault test runs: ci by default, a size
// that ends within a minute or so on a loaded 2-core machine under the race
// detector; more with UPSHIFT_FAULT_SAGAS (e.g. 300 for a long run by hand).
func faultSagas(t *testing.T, ci int) int {
	v := os.Getenv("UPSHIFT_FAULT_SAGAS")
	if v == "" {
		return ci
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("UPSHIFT_FAULT_SAGAS=%q: want a positive number of sagas", v)
	}
	return n
}

// submitFleet submits n sagas over the fleet's targets, a third of them
// failing verification and so rolled back; it returns each saga's expected
// end.
func submitFleet(w *world, n int) map[string]saga.State { return submitFleetSpread(w, n, nil) }

// submitFleetSpread is submitFleet, calling between (if not nil) after
// every twentieth saga, to spread the load over a run's faults.
func submitFleetSpread(w *world, n int, between func()) map[string]saga.State {
	w.on("verify.probe.bad0", "fail")
	w.on("verify.probe.bad1", "fail")
	want := map[string]saga.State{}
	long := sec(300)
	for i := range n {
		targets := []string{fleetTargets[i%8], fleetTargets[(i+3)%8]}
		outcome := saga.StateSucceeded
		if i%3 == 0 {
			targets, outcome = []string{fleetTargets[i%8], fleetTargets[8+i%2]}, saga.StateRolledBack
		}
		r := request("test", targets...)
		r.Spec.Rollout.BatchSize = 2
		r.Spec.Timeouts = spec.Timeouts{Precheck: long, Backup: long, Deploy: long, Verify: long, Rollback: long}
		want[w.submit(r)] = outcome
		if between != nil && i%20 == 19 && i < n-1 {
			between()
		}
	}
	return want
}

// executedAtLeast waits until the executors have run n steps in all: the
// sagas are under way.
func (w *world) executedAtLeast(n int) {
	w.t.Helper()
	natstest.Eventually(w.t, 3*time.Minute, strconv.Itoa(n)+" steps executed", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.executed) >= n
	})
}

// settled waits for every saga of want to end, within, then checks the
// promise: each ended as expected, each of its steps (compensations
// included) was executed exactly once, nothing else was executed, and
// every rolled-back saga ran its compensations.
func settled(t *testing.T, w *world, want map[string]saga.State, within time.Duration) {
	t.Helper()
	n := len(want)
	list := func(f sagastore.Filter) ([]sagastore.Summary, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f.Limit = n + 1
		return w.store.List(ctx, f)
	}
	for deadline := time.Now().Add(within); ; time.Sleep(time.Second) {
		active, err := list(sagastore.Filter{Active: true})
		var all []sagastore.Summary
		if err == nil && len(active) == 0 {
			if all, err = list(sagastore.Filter{}); err == nil && len(all) == n {
				break
			}
		}
		if time.Now().After(deadline) {
			missing := []string{}
			for id := range want {
				if all == nil {
					break
				}
				if !slices.ContainsFunc(all, func(s sagastore.Summary) bool { return s.ID == id }) {
					missing = append(missing, id)
				}
			}
			t.Fatalf("after %s: %d sagas still running, %d of %d listed, %d never created %v (list: %v)",
				within, len(active), len(all), n, len(missing), missing, err)
		}
	}
	steps, compensations := 0, 0
	exec := w.executions()
	for id, outcome := range want {
		r, err := w.store.Load(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Saga.State != outcome {
			t.Errorf("saga %s ended %s (%s), want %s", id, r.Saga.State, r.Saga.Reason, outcome)
		}
		compensated := 0
		for _, st := range r.Saga.Steps {
			steps++
			if st.Action == events.ActionRollback || st.Action == events.ActionRestore {
				compensated++
			}
			if n := exec[st.ID]; n != 1 {
				t.Errorf("saga %s: step %s executed %d times", id, st.ID, n)
			}
		}
		compensations += compensated
		if outcome == saga.StateRolledBack && compensated == 0 {
			t.Errorf("saga %s rolled back without a compensation: %v", id, commands(r.Saga))
		}
	}
	if got := len(exec); got != steps {
		t.Errorf("%d steps executed, the sagas have %d", got, steps)
	}
	t.Logf("%d sagas, %d steps (%d compensations), each executed once", n, steps, compensations)
}

// newClusterWorld is a world on a three-node cluster: the store is the KV
// one, every stream and bucket has three replicas, and the services and the
// coordinator share a connection given all three URLs.
func newClusterWorld(t *testing.T, c *natstest.Cluster) *world {
	nc, js := c.Connect(t)
	o := openKVWith(t, js, c.Streams())
	w := &world{t: t, log: testlog.New(t), nc: nc, js: js, store: o.store, spoil: o.spoil, reg: prometheus.NewRegistry(),
		url: c.URLs(), streams: c.Streams(), script: map[string]string{}, executed: map[string]int{}, release: make(chan struct{})}
	t.Cleanup(func() { close(w.release) })
	w.services(fleetTargets...)
	w.coordinator("c0")
	return w
}

// TestClusterLosesANode runs sagas on a three-node JetStream cluster and
// stops nodes under them: any node, then the leaders of the streams the
// sagas move through. A node stopped and started again must cost nothing:
// the clients move to the other nodes, the replicas elect new leaders, and
// every saga still ends as it should with every step executed once.
func TestClusterLosesANode(t *testing.T) {
	if testing.Short() {
		t.Skip("long: three servers and their sagas, twice")
	}
	// Not parallel: three servers and their elections under the race
	// detector are load enough.
	n := faultSagas(t, 30)
	// Each step is a few; the faults come once a fifth of them have run.
	mid := n * 8 / 5

	// One step runs past its ack wait in each run: heartbeats keep its
	// message through the faults, and it runs once.
	slow := func(w *world) {
		w.on("deploy.apply.t2", "slow-once")
		w.on("verify.probe.t5", "slow-once")
	}
	slowDone := func(t *testing.T, w *world) {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, k := range []string{"deploy.apply.t2", "verify.probe.t5"} {
			if w.script[k] != "slow-done" {
				t.Errorf("%s never ran slow", k)
			}
		}
	}

	t.Run("any node", func(t *testing.T) {
		c := natstest.StartCluster(t)
		w := newClusterWorld(t, c)
		slow(w)
		want := submitFleet(w, n)
		w.executedAtLeast(mid)
		c.Stop(1)
		w.executedAtLeast(mid + n) // work goes on without it
		c.Start(1)
		settled(t, w, want, 3*time.Minute)
		slowDone(t, w)
	})

	t.Run("leaders", func(t *testing.T) {
		c := natstest.StartCluster(t)
		w := newClusterWorld(t, c)
		slow(w)
		want := submitFleet(w, n)
		w.executedAtLeast(mid)
		// The commands' leader, then the saga bucket's, found anew: the
		// first stop may have moved it. Each node stopped is started
		// again and waited for until it has caught up (c.Start): stopping
		// the next before that would take two replicas of three away.
		for i, stream := range []string{events.StreamCommands, "KV_upshift_sagas"} {
			leader := c.Leader(w.js, stream)
			t.Logf("stopping n%d, the leader of %s", leader, stream)
			c.Stop(leader)
			w.executedAtLeast(mid + (2*i+1)*n/2)
			c.Start(leader)
		}
		settled(t, w, want, 3*time.Minute)
		slowDone(t, w)
	})
}

// TestPostgresConnectionsTerminated runs sagas on the PostgreSQL store while
// the server ends the coordinator's connections (pg_terminate_backend, for
// the test's database only), again and again, and once refuses the
// database for a while: a real outage of that database, without touching
// the server other tests share. The coordinator is not ready during the
// outage, resumes after it, and every saga still ends as it should with
// every step executed once.
func TestPostgresConnectionsTerminated(t *testing.T) {
	if testing.Short() {
		t.Skip("long: sagas with their database connections cut")
	}
	t.Parallel()
	n := faultSagas(t, 40)
	dbURL := pgtest.Database(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	db := strings.TrimPrefix(u.Path, "/") // pgtest's names are plain
	admin := func(sql string, args ...any) int64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), natstest.Patience)
		defer cancel()
		conn, err := pgx.Connect(ctx, pgtest.ServerURL())
		if err != nil {
			t.Error(err)
			return 0
		}
		defer conn.Close(ctx)
		tag, err := conn.Exec(ctx, sql, args...)
		if err != nil {
			t.Error(err)
		}
		return tag.RowsAffected()
	}
	terminate := func() int64 {
		return admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", db)
	}
	allow := func(ok bool) {
		admin("ALTER DATABASE " + pgx.Identifier{db}.Sanitize() + " ALLOW_CONNECTIONS " + strconv.FormatBool(ok))
	}
	t.Cleanup(func() { allow(true) })

	w := newWorldOn(t, func(t testing.TB, _ jetstream.JetStream) opened { return openPostgresAt(t, dbURL) }, fleetTargets...)
	c, _ := w.coordinator("c0")
	want := submitFleet(w, n)

	// Cut the connections at random moments while a third of the steps
	// run, and in at least five rounds: a fast coordinator may run that
	// third between two cuts, leaving too few for the check below.
	var cut int64
	for rounds, limit, deadline := 0, n*3, time.Now().Add(3*time.Minute); ; rounds++ {
		if time.Now().After(deadline) {
			t.Fatalf("%d steps not executed within 3 minutes of connections cut", limit)
		}
		time.Sleep(time.Duration(50+rand.IntN(300)) * time.Millisecond)
		cut += terminate()
		w.mu.Lock()
		done := len(w.executed) >= limit
		w.mu.Unlock()
		if done && rounds >= 5 {
			break
		}
	}
	// Then an outage: the database refuses connections until allowed again.
	storeOutage(t, w, c, want, 4*time.Second, func() { allow(false); cut += terminate() }, func() { allow(true) })

	settled(t, w, want, 3*time.Minute)
	if cut < 5 {
		t.Fatalf("only %d connections were terminated", cut)
	}
	t.Logf("%d connections terminated, one outage", cut)
}

// TestPostgresRestarted runs sagas on the PostgreSQL store and crashes the
// server under them (an immediate stop: every connection cut, no
// checkpoint), keeps it down for a while with requests coming in, then
// starts it again, which recovers from its log. A server of the test's own
// (pgtest.StartServer), not the shared one. The coordinator is not ready
// while the store is down, resumes when it is back, and every saga ends
// as it should with every step executed once.
func TestPostgresRestarted(t *testing.T) {
	if testing.Short() {
		t.Skip("long: sagas with their database server crashed")
	}
	t.Parallel()
	n := faultSagas(t, 30)
	pg := pgtest.StartServer(t)
	w := newWorldOn(t, func(t testing.TB, _ jetstream.JetStream) opened { return openPostgresAt(t, pg.URL()) }, fleetTargets...)
	c, _ := w.coordinator("c0")
	want := submitFleet(w, n)
	w.executedAtLeast(n) // under way

	storeOutage(t, w, c, want, 3*time.Second, pg.Stop, pg.Start)
	settled(t, w, want, 3*time.Minute)
}

// storeOutage takes the coordinator's store away (down), checks that the
// coordinator is not ready and says it is for the store, submits more
// sagas meanwhile (added to want), brings the store back (up) after pause
// and waits until the coordinator is ready again. Each request submitted
// during the outage must wait for the store, not use up its deliveries
// (ten, a few hundred milliseconds apart, in these tests) and be
// dead-lettered.
func storeOutage(t *testing.T, w *world, c *coordinator.Coordinator, want map[string]saga.State, pause time.Duration, down, up func()) {
	t.Helper()
	down()
	natstest.Eventually(t, natstest.Patience, "not ready while the store is down", func() bool { return c.Check() != nil })
	if err := c.Check(); !strings.Contains(err.Error(), "store") {
		t.Fatalf("why not ready: %v", err)
	}
	for id, outcome := range submitFleet(w, 6) {
		want[id] = outcome
	}
	time.Sleep(pause)
	up()
	natstest.Eventually(t, natstest.Patience, "ready again", func() bool { return c.Check() == nil })
}

// Poison: a command whose executor always fails with an error (retried,
// never a failure outcome) and one whose executor panics each end, once
// their deliveries are used up, as a failed step (gave up) and a roll-back
// of the saga, with exactly one dead letter each; the other sagas go on.
func TestPoisonCommandsEndAsAFailedStepAndARollBack(t *testing.T) {
	if testing.Short() {
		t.Skip("long: each poison command uses every delivery")
	}
	t.Parallel()
	w := newWorldOn(t, openKV, "ok", "err", "boom")
	w.coordinator("c1")
	w.on("deploy.apply.err", "error")
	w.on("verify.probe.boom", "panic")
	bad := map[string]string{w.submit(request("test", "err")): "deploy", w.submit(request("test", "boom")): "verify"}
	good := w.submit(request("test", "ok"))
	for id, phase := range bad {
		s := w.wait(id, 2*time.Minute, saga.StateRolledBack)
		var failed []string
		for _, st := range s.Steps {
			if st.Status == saga.StepFailed {
				failed = append(failed, string(st.Phase)+" "+string(st.Action)+" "+st.Reason)
			}
		}
		if len(failed) != 1 || !strings.HasPrefix(failed[0], phase+" ") || !strings.HasSuffix(failed[0], " "+events.ReasonGaveUp) {
			t.Errorf("saga %s: failed steps %v, want one %s step given up", id, failed, phase)
		}
		w.drained(id)
	}
	if s := w.wait(good, natstest.Patience); s.State != saga.StateSucceeded {
		t.Errorf("the healthy saga ended %s: %s", s.State, s.Reason)
	}
	// One dead letter per poison command, naming its step.
	var letters []events.DeadLetter
	natstest.Eventually(t, natstest.Patience, "two dead letters", func() bool {
		letters = natstest.ReadEvents[events.DeadLetter](t, w.js, events.StreamDeadLetter, "upshift.dlq.>", events.TypeDeadLetter)
		return len(letters) >= 2
	})
	time.Sleep(time.Second) // and no more come
	letters = natstest.ReadEvents[events.DeadLetter](t, w.js, events.StreamDeadLetter, "upshift.dlq.>", events.TypeDeadLetter)
	var subjects []string
	for _, dl := range letters {
		subjects = append(subjects, dl.Subject)
	}
	slices.Sort(subjects)
	if want := []string{"upshift.cmd.deploy.apply.err", "upshift.cmd.verify.probe.boom"}; !slices.Equal(subjects, want) {
		t.Fatalf("dead letters of %v, want one each of %v", subjects, want)
	}
}
