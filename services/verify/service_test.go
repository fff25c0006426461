package verify_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/pkg/testlog"
	"github.com/upshift/upshift/services/verify"
)

func TestServiceVerifiesAProbeCommand(t *testing.T) {
	t.Parallel()
	a := newApp(t, "application/json", `{"version":"4.2"}`, http.StatusServiceUnavailable, http.StatusOK)
	reg, err := targets.New(map[string]targets.Target{"web-1": {Root: t.TempDir(), Health: a.health(2, 3)}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, js := natstest.Start(t)
	svc := verify.New(js, verify.Config{Instance: "verify@test", Targets: reg, Client: &http.Client{},
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

	c := probeCmd("4.1", "4.2")
	c.Step = events.StepID(c.Saga, events.Verify, events.ActionProbe, c.Target, 1)
	c.NotAfter = c.Deadline
	env, err := events.New(c.Step, events.TypeCommand, "test", c.Saga, c.Attempt, time.Now(), c)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, js, events.CommandSubject(events.Verify, events.ActionProbe, c.Target), env); err != nil {
		t.Fatal(err)
	}

	var final events.StepResult
	natstest.Eventually(t, natstest.Patience, "final report", func() bool {
		for _, r := range natstest.ReadEvents[events.StepResult](t, js, events.StreamEvents, events.ResultFilter(events.Verify), events.TypeStep) {
			if r.Step == c.Step && r.Status.Final() {
				final = r
				return true
			}
		}
		return false
	})
	if final.Status != events.StatusSucceeded || final.Output["version"] != "4.2" || final.Output["probes"] != "3" {
		t.Fatalf("result %+v", final)
	}
	if len(final.Report) != 3 || final.Report[2].Detail != "2/2 probes healthy, 3 in all" {
		t.Fatalf("report %+v", final.Report)
	}
}
