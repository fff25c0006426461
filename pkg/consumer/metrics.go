package consumer

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/promreg"
)

// Metrics records what runners do. One Metrics serves every runner of a
// process; build it from the registry the process exposes.
type Metrics struct {
	messages *prometheus.CounterVec
	duration *prometheus.HistogramVec
	pending  *prometheus.GaugeVec
}

// NewMetrics registers the consumer metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upshift_consumer_messages_total",
			Help: "Messages processed by a consumer, by result (acked, retried, terminated, gave_up, ack_error; lost: dead-lettered after a last delivery never settled).",
		}, []string{"stream", "consumer", "result"})),
		duration: promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "upshift_consumer_handle_seconds",
			Help:    "Time to process one message, handler and settlement included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"stream", "consumer"})),
		pending: promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "upshift_consumer_pending",
			Help: "Messages in the stream not yet delivered to the consumer, read from the consumer every few seconds (its heartbeat) while it runs.",
		}, []string{"stream", "consumer"})),
	}
	return m
}

// Middleware counts each delivery's result and times it, from when it
// enters the pipeline until the message is settled. Every result's series
// is exported at zero from the start.
func (m *Metrics) Middleware(stream, consumer string) Middleware {
	return func(next Handler) Handler {
		if m == nil {
			return next
		}
		for _, r := range []string{ResultAcked, ResultRetried, ResultTermed, ResultGaveUp, ResultAckError, ResultLost} {
			m.messages.WithLabelValues(stream, consumer, r)
		}
		return func(ctx context.Context, d *Delivery) error {
			start := time.Now()
			d.afterSettle(func(result string) {
				m.messages.WithLabelValues(stream, consumer, result).Inc()
				m.duration.WithLabelValues(stream, consumer).Observe(time.Since(start).Seconds())
			})
			return next(ctx, d)
		}
	}
}

func (m *Metrics) setPending(stream, consumer string, pending uint64) {
	if m == nil {
		return
	}
	m.pending.WithLabelValues(stream, consumer).Set(float64(pending))
}

// lostOne counts a message dead-lettered by the lost-message follower.
func (m *Metrics) lostOne(stream, consumer string) {
	if m == nil {
		return
	}
	m.messages.WithLabelValues(stream, consumer, ResultLost).Inc()
}
