package phase_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
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

func consumerNames(t *testing.T, js jetstream.JetStream, stream string) []string {
	var names []string
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	l := s.ConsumerNames(context.Background())
	for n := range l.Name() {
		names = append(names, n)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// An older version's consumers per target, one of them with a command
// waiting, give way to the instance's consumer, which runs the command; an
// instance with the same targets shares the consumer; one whose targets
// overlap others is refused, naming the consumer in its way.
func TestPerTargetConsumersAreReplacedAndOverlapsRefused(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t)
	ctx := context.Background()
	for _, target := range []string{"a", "b"} {
		name := events.CommandConsumer(events.Deploy, target)
		if _, err := js.CreateOrUpdateConsumer(ctx, events.StreamCommands, jetstream.ConsumerConfig{Durable: name,
			FilterSubject: events.CommandFilter(events.Deploy, target), AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := js.CreateOrUpdateConsumer(ctx, events.StreamAdvisories, jetstream.ConsumerConfig{Durable: name + consumer.LostSuffix,
			FilterSubject: events.MaxDeliveriesSubject(events.StreamCommands, name), AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatal(err)
		}
	}
	r := &rig{t: t, js: js}
	waiting := cmd("b", events.ActionApply, 1)
	r.send(waiting, waiting.Step)

	var calls atomic.Int32
	exec := phase.ExecutorFunc(func(ctx context.Context, c events.Command, p phase.Progress) (phase.Outcome, error) {
		calls.Add(1)
		return phase.Success(nil), nil
	})
	svc, _ := start(t, js, exec)
	if res := r.final(waiting.Step); res.Status != events.StatusSucceeded {
		t.Fatalf("waiting command: %+v", res)
	}
	if got := consumerNames(t, js, events.StreamCommands); len(got) != 1 || got[0] != svc.ConsumerName() {
		t.Fatalf("COMMANDS consumers %v, want only %s", got, svc.ConsumerName())
	}
	if got := consumerNames(t, js, events.StreamAdvisories); len(got) != 1 || got[0] != svc.ConsumerName()+consumer.LostSuffix {
		t.Fatalf("ADVISORIES consumers %v, want only the new follower", got)
	}

	// The same targets in another order: the same consumer, shared.
	twin, _ := start(t, js, exec)
	if twin.ConsumerName() != svc.ConsumerName() || len(consumerNames(t, js, events.StreamCommands)) != 1 {
		t.Fatalf("twin consumes %s beside %v", twin.ConsumerName(), consumerNames(t, js, events.StreamCommands))
	}

	// b and c: b is another instance's, with a.
	other := phase.New(js, phase.Config{Service: events.Deploy, Targets: []string{"b", "c"}, Actions: []events.Action{events.ActionApply},
		Consumer: consumer.Config{AckWait: time.Second}}, exec, testlog.New(t), prometheus.NewRegistry())
	rctx, cancel := context.WithTimeout(ctx, natstest.Patience)
	defer cancel()
	err := other.Run(rctx)
	var api *jetstream.APIError
	if !errors.As(err, &api) || !strings.Contains(err.Error(), svc.ConsumerName()) || !strings.Contains(err.Error(), "same set of targets or sets apart") {
		t.Fatalf("overlapping instance: %v", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("executed %d times", calls.Load())
	}
}
