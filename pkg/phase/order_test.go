package phase_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/testlog"
)

// start runs a deploy instance for targets a and b on js until the returned
// function is called.
func start(t *testing.T, js jetstream.JetStream, exec phase.Executor) (*phase.Service, func()) {
	svc := phase.New(js, phase.Config{
		Service: events.Deploy, Instance: "deploy@test", Targets: []string{"a", "b"},
		Actions: []events.Action{events.ActionApply, events.ActionRollback},
		Consumer: consumer.Config{AckWait: 2 * time.Second, MaxDeliver: 5, Backoff: []time.Duration{10 * time.Millisecond},
			Grace: 100 * time.Millisecond},
	}, exec, testlog.New(t), prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	natstest.Eventually(t, natstest.Patience, "service ready", svc.Ready)
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return svc, stop
}

// The apply's process is killed while it runs; the roll-back is published;
// a new process starts. The server delivers the roll-back at once, the apply
// only once its ack wait has passed: the roll-back must still run second.
func TestRollbackNeverOvertakesAnApplyRedelivered(t *testing.T) {
	t.Parallel()
	srv, js := natstest.Start(t)
	r := &rig{t: t, js: js}

	ncA, jsA := natstest.Connect(t, srv)
	running := make(chan struct{}, 1)
	_, stopA := start(t, jsA, phase.ExecutorFunc(func(ctx context.Context, c events.Command, p phase.Progress) (phase.Outcome, error) {
		running <- struct{}{}
		<-ctx.Done()
		return phase.Outcome{}, ctx.Err()
	}))
	apply := cmd("a", events.ActionApply, 1)
	r.send(apply, apply.Step)
	select {
	case <-running:
	case <-time.After(natstest.Patience):
		t.Fatal("apply never ran")
	}
	ncA.Close() // killed: its apply is never settled
	stopA()
	rollback := cmd("a", events.ActionRollback, 1)
	r.send(rollback, rollback.Step)
	other := cmd("b", events.ActionApply, 2)
	r.send(other, other.Step)

	_, jsB := natstest.Connect(t, srv)
	var mu sync.Mutex
	var order []events.Action
	start(t, jsB, phase.ExecutorFunc(func(ctx context.Context, c events.Command, p phase.Progress) (phase.Outcome, error) {
		mu.Lock()
		defer mu.Unlock()
		if c.Target == "a" {
			order = append(order, c.Action)
		}
		return phase.Success(nil), nil
	}))
	r.final(apply.Step)
	r.final(rollback.Step)
	r.final(other.Step)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(order, []events.Action{events.ActionApply, events.ActionRollback}) {
		t.Fatalf("target a ran %v, want the apply, then its roll-back", order)
	}
}
