package consumer

import (
	"testing"
	"time"
)

// The delay after the n-th delivery is backoff[n-1]: the first retry waits
// the first delay, and the last value repeats.
func TestBackoffSchedule(t *testing.T) {
	b := []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}
	for delivered, want := range map[uint64]time.Duration{
		0: time.Second, 1: time.Second, 2: 5 * time.Second, 3: 30 * time.Second, 4: 30 * time.Second, 100: 30 * time.Second,
	} {
		if got := backoffFor(b, delivered); got != want {
			t.Errorf("after delivery %d: %s, want %s", delivered, got, want)
		}
	}
	if got := backoffFor([]time.Duration{time.Minute}, 7); got != time.Minute {
		t.Errorf("a single delay: %s", got)
	}
}
