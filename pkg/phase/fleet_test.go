package phase_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/phase"
)

// agentsUnderTest is how many simulated agents TestConsumersPerAgent runs:
// UPSHIFT_AGENTS, or a size that suits CI.
func agentsUnderTest(t *testing.T) int {
	if v := os.Getenv("UPSHIFT_AGENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("UPSHIFT_AGENTS=%q: want a positive number", v)
		}
		return n
	}
	return 200
}

// Many agents, each a deploy instance with its own connection serving three
// targets, against one server: the server holds one consumer and one
// follower of lost messages per agent, whatever the number of targets (a
// consumer and a follower per target before: six per agent here).
func TestConsumersPerAgent(t *testing.T) {
	agents, perAgent := agentsUnderTest(t), 3
	srv, js := natstest.Start(t)
	var executed atomic.Int32
	exec := phase.ExecutorFunc(func(ctx context.Context, c events.Command, p phase.Progress) (phase.Outcome, error) {
		executed.Add(1)
		return phase.Success(nil), nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	services := make([]*phase.Service, agents)
	began := time.Now()
	const wave = 50 // agents starting at once
	for i := range agents {
		_, ajs := natstest.Connect(t, srv)
		targets := make([]string, perAgent)
		for j := range targets {
			targets[j] = fmt.Sprintf("h%d-t%d", i, j)
		}
		services[i] = phase.New(ajs, phase.Config{Service: events.Deploy, Instance: fmt.Sprintf("agent-%d/deploy", i),
			Targets: targets, Actions: []events.Action{events.ActionApply}, Host: fmt.Sprintf("h%d", i),
			Consumer: consumer.Config{AckWait: 10 * time.Second, Heartbeat: 15 * time.Second}},
			exec, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		wg.Go(func() {
			if err := services[i].Run(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("agent %d: %v", i, err)
			}
		})
		if (i+1)%wave == 0 || i == agents-1 {
			natstest.Eventually(t, natstest.Patience, "a wave of agents ready", func() bool {
				for _, s := range services[:i+1] {
					if !s.Ready() {
						return false
					}
				}
				return true
			})
		}
	}
	t.Logf("%d agents ready in %s", agents, time.Since(began).Round(time.Millisecond))
	r := &rig{t: t, js: js}
	for i := range agents {
		c := cmd(fmt.Sprintf("h%d-t%d", i, i%perAgent), events.ActionApply, i)
		r.send(c, c.Step)
	}
	natstest.Eventually(t, natstest.Patience, "one command per agent executed", func() bool { return int(executed.Load()) >= agents })

	jsz, err := srv.Jsz(&server.JSzOptions{})
	if err != nil {
		t.Fatal(err)
	}
	varz, err := srv.Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d agents, %d targets: server consumers %d (%.2f per agent), JetStream memory %d B, store %d B, process RSS %d MiB (server and agents in one process)",
		agents, agents*perAgent, jsz.Consumers, float64(jsz.Consumers)/float64(agents), jsz.Memory, jsz.Store, varz.Mem>>20)
	if want := 2 * agents; jsz.Consumers != want {
		t.Fatalf("server holds %d consumers for %d agents of %d targets, want %d: one consumer and one follower per agent",
			jsz.Consumers, agents, perAgent, want)
	}
}
