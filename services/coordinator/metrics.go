package coordinator

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/promreg"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// Metrics are the coordinator's. Counters count what this instance did:
// sum them across instances. The in-flight gauge is read from the store:
// every instance reports the whole, so take the max.
type Metrics struct {
	sagas      *prometheus.CounterVec
	inFlight   *prometheus.GaugeVec
	phases     *prometheus.HistogramVec
	rollbacks  *prometheus.CounterVec
	conflicts  prometheus.Counter
	overdue    prometheus.Counter
	unreadable prometheus.Gauge
}

// NewMetrics registers the coordinator's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sagas: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upshift_sagas_total",
			Help: "Sagas that ended, by outcome (the terminal state, or invalid for a refused request).",
		}, []string{"outcome"})),
		inFlight: promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "upshift_sagas_in_flight",
			Help: "Sagas not yet ended, by state, as stored.",
		}, []string{"state"})),
		phases: promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "upshift_phase_duration_seconds",
			Help:    "Time a saga spent in a phase (a batch counts as one), by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.05, 3, 12),
		}, []string{"phase", "outcome"})),
		rollbacks: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upshift_rollbacks_total",
			Help: "Roll-backs started, by reason: deploy_failed, deploy_timeout, verify_failed, verify_timeout, window (none opens before the deadline) or cancelled.",
		}, []string{"reason"})),
		conflicts: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "upshift_coordinator_conflicts_total",
			Help: "Saga updates that lost a compare-and-set to another update and were retried.",
		})),
		overdue: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "upshift_coordinator_overdue_total",
			Help: "Deadlines found passed by the sweep rather than by their timer (a timer lost or dead-lettered).",
		})),
		unreadable: promreg.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "upshift_coordinator_unreadable_sagas",
			Help: "Stored sagas that cannot be decoded, skipped by the last count of sagas in flight; each needs an operator.",
		})),
	}
	// Every series at zero from the start: an alert on a rate sees a
	// coordinator that has ended no saga yet.
	for _, c := range saga.Causes {
		m.rollbacks.WithLabelValues(string(c))
	}
	for _, st := range saga.States {
		if st.Terminal() {
			m.sagas.WithLabelValues(string(st))
		}
	}
	m.sagas.WithLabelValues(events.KindInvalid)
	return m
}

// timed are the states whose duration is a phase duration.
var timed = map[saga.State]bool{saga.StatePrechecking: true, saga.StateAwaitingApproval: true, saga.StateAwaitingWindow: true,
	saga.StateBackingUp: true, saga.StateDeploying: true, saga.StateVerifying: true, saga.StateRollingBack: true}

func (m *Metrics) transition(prev, next saga.Saga, eff saga.Effects) {
	// Every state entered in this transition ends the one before it.
	from := prev
	for _, e := range eff.Events {
		st := saga.State(e.Kind)
		if !isState(st) {
			continue // a note, not a state change
		}
		if timed[from.State] {
			outcome := "succeeded"
			switch st {
			case saga.StateFailed, saga.StateRejected, saga.StateCancelled, saga.StateRollingBack, saga.StateRollbackFailed:
				outcome = "failed"
			}
			m.phases.WithLabelValues(string(from.State), outcome).Observe(next.UpdatedAt.Sub(from.EnteredAt).Seconds())
		}
		if st == saga.StateRollingBack {
			m.rollbacks.WithLabelValues(string(eff.RollBack)).Inc()
		}
		from.State, from.EnteredAt = st, next.UpdatedAt
	}
	if next.State.Terminal() && !prev.State.Terminal() {
		m.sagas.WithLabelValues(string(next.State)).Inc()
	}
}

func isState(s saga.State) bool {
	for _, x := range saga.States {
		if x == s {
			return true
		}
	}
	return false
}

// refresh sets the in-flight gauge from the store, every interval.
func (m *Metrics) refresh(ctx context.Context, store sagastore.Store, interval time.Duration, log *slog.Logger) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		active, err := store.List(ctx, sagastore.Filter{Active: true, Limit: 100000})
		bad, err := sagastore.Skipped(err)
		if err != nil && ctx.Err() == nil {
			log.Warn("cannot count sagas in flight", "err", err)
		}
		if err == nil {
			m.unreadable.Set(float64(len(bad)))
			counts := map[saga.State]int{}
			for _, s := range active {
				counts[s.State]++
			}
			for _, st := range saga.States {
				if !st.Terminal() {
					m.inFlight.WithLabelValues(string(st)).Set(float64(counts[st]))
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
