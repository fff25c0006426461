package deploy_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/testlog"
	"github.com/upshift/upshift/services/deploy"
)

func TestServiceAppliesACommandFromNATS(t *testing.T) {
	t.Parallel()
	h := newHost(t, 0)
	h.installed("1.0")
	_, js := natstest.Start(t)
	svc := deploy.New(js, deploy.Config{Instance: "deploy@test", Targets: h.exec.Targets, Artifacts: h.exec.Artifacts,
		Consumer: consumer.Config{AckWait: time.Second, MaxDeliver: 3, Backoff: []time.Duration{10 * time.Millisecond}},
	}, testlog.New(t), prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	natstest.Eventually(t, natstest.Patience, "service ready", svc.Ready)

	url, digest := h.pack("app-1.1", release("1.1"))
	apply := command(events.ActionApply, "1.0", "1.1", url, digest)
	maintain := command(events.ActionMaintain, "", "", "", "")
	maintain.Step = events.StepID(maintain.Saga, events.Deploy, events.ActionMaintain, "web-1", 1)
	maintain.Upgrade.Kind, maintain.Upgrade.Actions = "Maintenance", []string{"config-drift"}
	for _, c := range []events.Command{apply, maintain} {
		env, err := events.New(c.Step, events.TypeCommand, "test", c.Saga, c.Attempt, time.Now(), c)
		must(t, err)
		must(t, bus.Publish(context.Background(), js, events.CommandSubject(c.Phase, c.Action, c.Target), env))
	}

	final := map[string]events.StepResult{}
	natstest.Eventually(t, natstest.Patience, "final results", func() bool {
		for _, r := range natstest.ReadEvents[events.StepResult](t, js, events.StreamEvents, "upshift.evt.>", events.TypeStep) {
			if r.Status.Final() {
				final[r.Step] = r
			}
		}
		return len(final) == 2
	})
	if r := final[apply.Step]; r.Status != events.StatusSucceeded || r.Output["current"] != "1.1" || r.Output["previous"] != "1.0" ||
		names(r.Report) != "stage=ok extract=ok stop=ok migrate=ok switch=ok start=ok cleanup=ok" {
		t.Fatalf("apply result %+v", r)
	}
	if h.current() != "releases/1.1" {
		t.Fatalf("current -> %q", h.current())
	}
	// Maintenance reaches its action: one the target has no settings for.
	if r := final[maintain.Step]; r.Status != events.StatusFailed || r.Reason != deploy.ReasonMaintenanceUnconfigured {
		t.Fatalf("maintain result %+v", r)
	}
}
