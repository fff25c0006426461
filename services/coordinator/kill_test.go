package coordinator_test

import (
	"context"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// TestCoordinatorKilledAtRandomAcrossManySagas runs the coordinator as a
// process on PostgreSQL and kills it with SIGKILL at random moments, over and
// over, while 200 sagas run: between any two of its writes, between a commit
// and the publishing of its outbox, in the middle of a publish. Every saga
// must still end as it should, and no phase command may run twice: the
// executors count.
func TestCoordinatorKilledAtRandomAcrossManySagas(t *testing.T) {
	if testing.Short() {
		t.Skip("long: 200 sagas and a process killed again and again")
	}
	// Not parallel: it runs alone, before the package's parallel tests.
	// Its progress is what a coordinator gets done between two kills, and
	// sharing the cores with the fleet tests under the race detector
	// starved every restart (22 of 200 sagas left after 4 minutes).
	url := pgtest.Database(t)
	w := newWorldOn(t, func(t testing.TB, _ jetstream.JetStream) opened { return openPostgresAt(t, url) }, fleetTargets...)
	w.on("verify.probe.bad0", "fail")
	w.on("verify.probe.bad1", "fail")

	bin := filepath.Join(t.TempDir(), "upshift-coordinator")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/upshift-coordinator").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "--nats-url", w.url, "--store", "postgres", "--database-url", url,
			"--ops-addr", "", "--http-addr", "", "--relay-interval", "500ms", "--ack-wait", "2s",
			"--max-deliver", "100", "--log-format", "text", "--log-level", "info")
		// Each process's log goes with the test's output; Wait, before the
		// test ends, waits for the last of it.
		cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	var mu sync.Mutex
	proc := start()
	stopKilling := make(chan struct{})
	killed := 0
	var killer sync.WaitGroup
	killer.Go(func() {
		for {
			select {
			case <-stopKilling:
				return
			case <-time.After(time.Duration(200+rand.IntN(1300)) * time.Millisecond):
			}
			mu.Lock()
			proc.Process.Signal(syscall.SIGKILL)
			proc.Wait()
			killed++
			proc = start()
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		proc.Process.Signal(syscall.SIGTERM)
		proc.Wait()
	})

	const n = 200
	// Spread over the kills: after every twentieth saga, the next kill
	// (the sagas outran the kills when submitted 100 ms a score apart).
	kills := func() int {
		mu.Lock()
		defer mu.Unlock()
		return killed
	}
	want := submitFleetSpread(w, n, func() {
		before := kills()
		natstest.Eventually(t, natstest.Patience, "the next kill", func() bool { return kills() > before })
	})
	deadline := time.Now().Add(4 * time.Minute)
	for ; ; time.Sleep(500 * time.Millisecond) {
		active, err := w.store.List(context.Background(), sagastore.Filter{Active: true, Limit: n + 1})
		if err == nil && len(active) == 0 {
			if all, _ := w.store.List(context.Background(), sagastore.Filter{Limit: n + 1}); len(all) == n {
				break
			}
		}
		if time.Now().After(deadline) {
			close(stopKilling)
			killer.Wait()
			t.Fatalf("%d sagas still running after 4 minutes and %d kills", len(active), killed)
		}
	}
	close(stopKilling)
	killer.Wait()

	steps := 0
	for id, outcome := range want {
		r, err := w.store.Load(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Saga.State != outcome {
			t.Errorf("saga %s ended %s (%s), want %s", id, r.Saga.State, r.Saga.Reason, outcome)
		}
		for _, st := range r.Saga.Steps {
			steps++
			if n := w.executions()[st.ID]; n != 1 {
				t.Errorf("step %s executed %d times", st.ID, n)
			}
		}
	}
	if got := len(w.executions()); got != steps {
		t.Errorf("%d steps executed, the sagas have %d", got, steps)
	}
	if killed < 5 {
		t.Fatalf("the coordinator was killed only %d times", killed)
	}
	t.Logf("%d sagas, %d steps, each executed once, across %d kills of the coordinator", n, steps, killed)
}
