package phase

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/promreg"

	"github.com/upshift/upshift/pkg/events"
)

// Metrics counts the commands a phase service handles.
type Metrics struct {
	commands *prometheus.CounterVec
	steps    *prometheus.HistogramVec
}

// NewMetrics registers the phase service metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		commands: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upshift_commands_total",
			Help: "Commands handled by a phase service, by result: succeeded, failed, duplicate (answered from the record), expired, unsupported, gave_up, error (to be retried).",
		}, []string{"service", "action", "result"})),
		steps: promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "upshift_step_duration_seconds",
			Help: "Time a phase service took over one step, by outcome.",
			// From a check of ten milliseconds to a deploy of hours.
			Buckets: prometheus.ExponentialBucketsRange(0.01, 4*3600, 20),
		}, []string{"service", "action", "outcome"})),
	}
	return m
}

// Results counted by upshift_commands_total.
var results = []string{string(events.StatusSucceeded), string(events.StatusFailed), "duplicate",
	events.ReasonExpired, events.ReasonUnsupported, events.ReasonGaveUp, "error"}

// serve exports the series of a service's actions at zero, so that a
// dashboard or an alert sees a service that has done nothing yet.
func (m *Metrics) serve(service events.Phase, actions []events.Action) {
	for _, a := range actions {
		for _, r := range results {
			m.commands.WithLabelValues(string(service), string(a), r)
		}
	}
}

func (m *Metrics) command(service events.Phase, action events.Action, result string) {
	m.commands.WithLabelValues(string(service), string(action), result).Inc()
}

func (m *Metrics) duration(service events.Phase, action events.Action, status events.Status, d time.Duration) {
	m.steps.WithLabelValues(string(service), string(action), string(status)).Observe(d.Seconds())
}
