package notify

import (
	"math/rand/v2"
	"time"
)

// Backoff is the schedule of a notice's retries: exponential, with jitter so
// that the notices of one outage do not all come back at once.
type Backoff struct {
	// Base is the delay after the first failed delivery. Default 1s.
	Base time.Duration
	// Max bounds a delay. Default 5m.
	Max time.Duration
}

// Delay is how long to wait after the delivered-th delivery failed: base
// doubled for each delivery before it, capped at Max, then a random value
// between half of that and all of it ("equal jitter").
func (b Backoff) Delay(delivered uint64) time.Duration {
	base, ceiling := b.Base, b.Max
	if base <= 0 {
		base = time.Second
	}
	if ceiling <= 0 {
		ceiling = 5 * time.Minute
	}
	d := base
	for i := uint64(1); i < delivered && d < ceiling; i++ {
		d *= 2
	}
	d = min(d, ceiling)
	half := d / 2
	return half + rand.N(d-half+1)
}
