package verify

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/targets"
)

// Progress is reported after this many probes, or this much time, whichever
// comes first, so a slow verification still shows it is alive.
const (
	progressEvery    = 3
	progressInterval = 5 * time.Second
)

// prober polls one target's health settings.
type prober struct {
	client  *http.Client
	health  targets.Health
	expect  string
	timeout time.Duration
}

func newProber(c *http.Client, h targets.Health, expect string) *prober {
	if h.Interval.Duration <= 0 {
		h.Interval.Duration = time.Second
	}
	if h.Successes <= 0 {
		h.Successes = 3
	}
	if h.Failures <= 0 {
		h.Failures = 5
	}
	// One slow answer must not hold up the polling, nor be cut so short
	// that a loaded but healthy server fails.
	timeout := max(min(5*time.Second, h.Interval.Duration), 200*time.Millisecond)
	return &prober{client: c, health: h, expect: expect, timeout: timeout}
}

// tally is where the polling stands.
type tally struct {
	total, good, bad int
	last             probe
	seen             string // the last version read
}

func (t *tally) add(p probe) {
	t.total++
	t.last = p
	if p.version.seen != "" {
		t.seen = p.version.seen
	}
	if p.ok() {
		t.good, t.bad = t.good+1, 0
	} else {
		t.good, t.bad = 0, t.bad+1
	}
}

// run probes every interval until a verdict. stopAt, when set, is when to
// give up; ctx's end returns its error.
func (p *prober) run(ctx context.Context, stopAt time.Time, progress phase.Progress) (phase.Outcome, error) {
	var t tally
	sinceReport, lastReport := 0, time.Now()
	for {
		if !stopAt.IsZero() && !time.Now().Before(stopAt) {
			return p.deadline(t), nil
		}
		started := time.Now()
		pr := p.probe(ctx, stopAt)
		if err := ctx.Err(); err != nil {
			return phase.Outcome{}, fmt.Errorf("verify: %w", err)
		}
		t.add(pr)
		switch {
		case !pr.ok() && !stopAt.IsZero() && !time.Now().Before(stopAt):
			// Possibly cut short by the deadline itself: no verdict on the
			// target, only on the time.
			return p.deadline(t), nil
		case t.good >= p.health.Successes:
			return phase.Success(p.output(t), p.report(t, true)...), nil
		case t.bad >= p.health.Failures:
			return p.failure(t, pr.reason(), fmt.Errorf("%s, %d probes in a row", pr.problem(), t.bad)), nil
		}
		if sinceReport++; sinceReport >= progressEvery || time.Since(lastReport) >= progressInterval {
			progress(p.status(t))
			sinceReport, lastReport = 0, time.Now()
		}
		next := started.Add(p.health.Interval.Duration)
		if !stopAt.IsZero() && next.After(stopAt) {
			next = stopAt
		}
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return phase.Outcome{}, fmt.Errorf("verify: %w", ctx.Err())
		case <-timer.C:
		}
	}
}

func (p *prober) deadline(t tally) phase.Outcome {
	what := "no probe could run"
	switch {
	case t.total > 0 && !t.last.ok():
		what = fmt.Sprintf("%d probes, the last: %s", t.total, t.last.problem())
	case t.total > 0:
		what = fmt.Sprintf("%d/%d probes healthy in a row", t.good, p.health.Successes)
	}
	return p.failure(t, ReasonDeadline, fmt.Errorf("stopped %s before the step's deadline without a verdict: %s",
		deadlineMargin, what))
}

func (p *prober) failure(t tally, reason string, err error) phase.Outcome {
	out := phase.Failure(reason, err, p.report(t, false)...)
	out.Output = p.output(t)
	return out
}

func (p *prober) output(t tally) map[string]string {
	return map[string]string{"probes": strconv.Itoa(t.total), "version": t.seen}
}

// report is the last result of each check, then the counts.
func (p *prober) report(t tally, passed bool) []events.ReportLine {
	var lines []events.ReportLine
	if t.total > 0 {
		lines = append(lines,
			events.ReportLine{Name: "health", OK: t.last.health.ok, Detail: t.last.health.detail},
			events.ReportLine{Name: "version", OK: t.last.version.ok, Detail: t.last.version.detail})
	}
	var counts string
	switch {
	case passed:
		counts = fmt.Sprintf("%d/%d probes healthy", t.good, p.health.Successes)
	case t.bad > 0:
		counts = fmt.Sprintf("%d/%d probes failed", t.bad, p.health.Failures)
	default:
		counts = fmt.Sprintf("%d/%d probes healthy", t.good, p.health.Successes)
	}
	if t.total > max(t.good, t.bad) {
		counts += fmt.Sprintf(", %d in all", t.total)
	}
	return append(lines, events.ReportLine{Name: "probes", OK: passed, Detail: counts})
}

// status is a short progress line.
func (p *prober) status(t tally) string {
	if t.last.ok() {
		return fmt.Sprintf("probe %d: healthy (%d/%d in a row)", t.total, t.good, p.health.Successes)
	}
	return fmt.Sprintf("probe %d: %s (%d/%d failed in a row)", t.total, t.last.problem(), t.bad, p.health.Failures)
}
