package phase

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/events"
)

// A deploy step may take an hour or more; its duration must land in a
// bucket that says so, not only in +Inf.
func TestLongStepsLandInAFiniteBucket(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	for _, d := range []time.Duration{time.Hour, 3 * time.Hour} {
		m.duration(events.Deploy, events.ActionApply, events.StatusSucceeded, d)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "upshift_step_duration_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		var top float64
		for _, b := range h.GetBucket() {
			top = b.GetUpperBound()
			if b.GetCumulativeCount() == h.GetSampleCount() {
				return // every observation is in a finite bucket
			}
		}
		t.Fatalf("%d steps of 1h and 3h, and the largest finite bucket ends at %gs", h.GetSampleCount(), top)
	}
	t.Fatal("upshift_step_duration_seconds not gathered")
}
