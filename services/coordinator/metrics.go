package coordinator

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/promreg"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// Metrics are the coordinator's. Counters count what this instance did:
// sum them across instances. The in-flight gauge is read from the store by
// the instance holding the lease (upshift_coordinator_leader 1), at each
// scrape; the others leave it out, so take the max (or the sum).
type Metrics struct {
	gauge     *inFlight
	sagas     *prometheus.CounterVec
	phases    *prometheus.HistogramVec
	rollbacks *prometheus.CounterVec
	conflicts prometheus.Counter
	overdue   prometheus.Counter
	leader    prometheus.Gauge
	// isLeader is whether this instance holds the lease.
	isLeader atomic.Bool
}

// lead records whether this instance holds the lease.
func (m *Metrics) lead(held bool) {
	m.isLeader.Store(held)
	if held {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}

func (m *Metrics) leading() bool { return m.isLeader.Load() }

// NewMetrics registers the coordinator's metrics with reg; the in-flight
// gauge reads store.
func NewMetrics(reg prometheus.Registerer, store sagastore.Store, log *slog.Logger) *Metrics {
	m := &Metrics{}
	gauge := promreg.Register(reg, &inFlight{store: store, log: log, skips: map[string][]string{}, leading: m.leading,
		state: prometheus.NewDesc("upshift_sagas_in_flight", "Sagas not yet ended, by state, as stored, counted at each scrape.",
			[]string{"state"}, nil),
		unreadble: prometheus.NewDesc("upshift_coordinator_unreadable_sagas",
			"Stored sagas that cannot be decoded, left out of the count of sagas in flight or skipped by the relay or the sweep; each needs an operator.", nil, nil),
	})
	*m = Metrics{
		gauge: gauge,
		sagas: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upshift_sagas_total",
			Help: "Sagas that ended, by outcome (the terminal state, or invalid for a refused request).",
		}, []string{"outcome"})),
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
		leader: promreg.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "upshift_coordinator_leader",
			Help: "1 while this instance holds the lease and does the background work (relay, overdue sweep, in-flight count), else 0.",
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
var timed = map[saga.State]bool{saga.StatePrechecking: true, saga.StateAwaitingConfirmation: true, saga.StateAwaitingApproval: true, saga.StateAwaitingWindow: true,
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

// inFlight is the in-flight gauge, and the count of unreadable sagas,
// computed at each scrape from the store's count by state: nothing is read
// between scrapes, and a scrape sees the store as it is.
type inFlight struct {
	store            sagastore.Store
	log              *slog.Logger
	state, unreadble *prometheus.Desc
	// leading says whether the instance holds the lease: only the leader
	// counts, so one instance reads the store at each scrape.
	leading func() bool

	mu    sync.Mutex
	skips map[string][]string // what the relay's and the sweep's last listings skipped
}

// skipped records the sagas a listing of the relay or the sweep skipped:
// a store whose count reads no document (PostgreSQL's) finds no saga
// unreadable, they do.
func (m *Metrics) skipped(what string, ids []string) {
	m.gauge.mu.Lock()
	defer m.gauge.mu.Unlock()
	m.gauge.skips[what] = ids
}

// scrapeTimeout bounds the store's count during a scrape; Prometheus's own
// default scrape timeout is 10s.
const scrapeTimeout = 5 * time.Second

func (c *inFlight) Describe(ch chan<- *prometheus.Desc) { ch <- c.state; ch <- c.unreadble }

// Collect counts. A store that cannot answer leaves both series out of this
// scrape (an alert on absent() sees it) rather than failing every other
// metric of the process.
func (c *inFlight) Collect(ch chan<- prometheus.Metric) {
	if !c.leading() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	counts, err := c.store.CountActive(ctx)
	bad, err := sagastore.Skipped(err)
	if err != nil {
		c.log.Warn("cannot count sagas in flight", "err", err)
		return
	}
	for _, st := range saga.States {
		if !st.Terminal() {
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, float64(counts[st]), string(st))
		}
	}
	unread := map[string]bool{}
	c.mu.Lock()
	for _, ids := range c.skips {
		for _, id := range ids {
			unread[id] = true
		}
	}
	c.mu.Unlock()
	for _, id := range bad {
		unread[id] = true
	}
	ch <- prometheus.MustNewConstMetric(c.unreadble, prometheus.GaugeValue, float64(len(unread)))
}
