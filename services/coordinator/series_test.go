package coordinator_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/phase"
)

// A freshly started coordinator and phase services export their counters'
// series at zero, before anything happened: a dashboard or an alert on a
// rate sees a process that has done nothing yet, not no series at all.
func TestCountersAreExportedAtZeroFromTheStart(t *testing.T) {
	t.Parallel()
	w := newWorldOn(t, openKV, "a")
	w.coordinator("c1")
	// A phase service of its own, on a registry of its own, as a process
	// of its own has.
	reg := prometheus.NewRegistry()
	svc := phase.New(w.js, phase.Config{Service: events.Deploy, Targets: []string{"z"},
		Actions: []events.Action{events.ActionApply, events.ActionRollback}, Consumer: fast},
		phase.ExecutorFunc(w.execute), w.log, reg)
	w.run("deploy-z", svc.Run)
	natstest.Eventually(t, natstest.Patience, "deploy-z ready", svc.Ready)
	var mfs []*dto.MetricFamily
	for _, g := range []prometheus.Gatherer{w.reg, reg} {
		got, err := g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		mfs = append(mfs, got...)
	}
	for _, want := range []struct {
		name   string
		labels map[string]string
	}{
		{"upshift_sagas_total", map[string]string{"outcome": "rolled_back"}},
		{"upshift_sagas_total", map[string]string{"outcome": "invalid"}},
		{"upshift_rollbacks_total", map[string]string{"reason": "verify_failed"}},
		{"upshift_commands_total", map[string]string{"service": "deploy", "action": "rollback", "result": "failed"}},
		{"upshift_commands_total", map[string]string{"service": "deploy", "action": "apply", "result": "gave_up"}},
		{"upshift_consumer_messages_total", map[string]string{"consumer": "coordinator-requests", "result": "terminated"}},
		{"upshift_consumer_messages_total", map[string]string{"consumer": "deploy-z", "result": "lost"}},
	} {
		if v, ok := series(mfs, want.name, want.labels); !ok || v != 0 {
			t.Errorf("%s%v: exported %v, value %v; want a series at 0", want.name, want.labels, ok, v)
		}
	}
}

// series finds the counter series with every label given.
func series(mfs []*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}
