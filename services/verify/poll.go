package verify

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/upshift/upshift/pkg/checks"
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

// prober polls one target's health settings and its HTTP and TCP checks.
type prober struct {
	client  *http.Client
	health  targets.Health
	extra   []checks.Check
	expect  string
	timeout time.Duration
	// watching: polled until the end of a watch period, it never passes
	// early, and the end of the period is a pass.
	watching bool
}

func newProber(c *http.Client, t targets.Target, expect string, watching bool) *prober {
	h := t.Health
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
	return &prober{client: c, health: h, extra: roundChecks(c, t, expect), expect: expect, timeout: timeout, watching: watching}
}

// probes reports whether the target has anything to poll.
func probes(t targets.Target) bool {
	return t.Health.URL != "" || len(t.Verify.HTTP)+len(t.Verify.TCP) > 0
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

// verdict is how the polling ended.
type verdict struct {
	t      tally
	passed bool
	// aborted: stopped because another part of the verification failed.
	aborted bool
	reason  string
	err     error // what failed, when neither passed nor aborted
}

// run probes every interval until a verdict. stopAt, when set, is when to
// give up (or, watching, when the watch ends); ctx's end returns its error;
// abort's closing ends the polling without a verdict of its own.
func (p *prober) run(ctx context.Context, stopAt time.Time, abort <-chan struct{}, progress phase.Progress) (verdict, error) {
	var t tally
	sinceReport, lastReport := 0, time.Now()
	for {
		// A watch executed again after its period (a crash before its
		// result was recorded) still probes once, to report on the target
		// as it is rather than on nothing.
		first := p.watching && t.total == 0
		if !first && !stopAt.IsZero() && !time.Now().Before(stopAt) {
			return p.deadline(t), nil
		}
		started := time.Now()
		limit := stopAt
		if first && !stopAt.After(started) {
			limit = time.Time{}
		}
		pr := p.probe(ctx, limit)
		if err := ctx.Err(); err != nil {
			return verdict{}, fmt.Errorf("verify: %w", err)
		}
		t.add(pr)
		switch {
		case !pr.ok() && !stopAt.IsZero() && !time.Now().Before(stopAt):
			// Possibly cut short by the deadline itself: no verdict on the
			// target, only on the time.
			return p.deadline(t), nil
		case !p.watching && t.good >= p.health.Successes:
			return verdict{t: t, passed: true}, nil
		case t.bad >= p.health.Failures:
			return verdict{t: t, reason: pr.reason(), err: fmt.Errorf("%s, %d probes in a row", pr.problem(), t.bad)}, nil
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
			return verdict{}, fmt.Errorf("verify: %w", ctx.Err())
		case <-abort:
			timer.Stop()
			return verdict{t: t, aborted: true}, nil
		case <-timer.C:
		}
	}
}

// deadline is the verdict at stopAt: the end of a watch passes; a
// verification without a verdict by then fails.
func (p *prober) deadline(t tally) verdict {
	if p.watching {
		return verdict{t: t, passed: true}
	}
	what := "no probe could run"
	switch {
	case t.total > 0 && !t.last.ok():
		what = fmt.Sprintf("%d probes, the last: %s", t.total, t.last.problem())
	case t.total > 0:
		what = fmt.Sprintf("%d/%d probes healthy in a row", t.good, p.health.Successes)
	}
	return verdict{t: t, reason: ReasonDeadline, err: fmt.Errorf("stopped %s before the step's deadline without a verdict: %s",
		deadlineMargin, what)}
}

func (p *prober) output(t tally) map[string]string {
	return map[string]string{"probes": strconv.Itoa(t.total), "version": t.seen}
}

// report is the last result of each check, then the counts.
func (p *prober) report(v verdict) []events.ReportLine {
	t := v.t
	var lines []events.ReportLine
	if t.total > 0 {
		for _, c := range []struct {
			name, threshold string
			c               check
		}{{"health", "2xx", t.last.health}, {"version", quote(p.expect), t.last.version}} {
			if c.c.skip {
				continue
			}
			l := events.ReportLine{Name: c.name, OK: c.c.ok, Status: events.CheckPass, Value: c.c.value, Detail: c.c.detail}
			if !c.c.ok {
				l.Status, l.Threshold = events.CheckFail, c.threshold
			}
			lines = append(lines, l)
		}
		lines = append(lines, t.last.extra...)
	}
	var counts string
	switch {
	case p.watching && v.passed:
		counts = fmt.Sprintf("%d probes while watching, never %d failed in a row", t.total, p.health.Failures)
	case v.passed:
		counts = fmt.Sprintf("%d/%d probes healthy", t.good, p.health.Successes)
	case t.bad > 0:
		counts = fmt.Sprintf("%d/%d probes failed", t.bad, p.health.Failures)
	default:
		counts = fmt.Sprintf("%d/%d probes healthy", t.good, p.health.Successes)
	}
	if !p.watching && t.total > max(t.good, t.bad) {
		counts += fmt.Sprintf(", %d in all", t.total)
	}
	l := events.ReportLine{Name: "probes", OK: v.passed || v.aborted, Status: events.CheckPass, Detail: counts}
	switch {
	case v.aborted:
		l.Status = events.CheckWarn
		l.Detail += "; stopped: another check failed"
	case !v.passed:
		l.Status = events.CheckFail
	}
	return append(lines, l)
}

// status is a short progress line.
func (p *prober) status(t tally) string {
	if t.last.ok() {
		if p.watching {
			return fmt.Sprintf("probe %d: healthy", t.total)
		}
		return fmt.Sprintf("probe %d: healthy (%d/%d in a row)", t.total, t.good, p.health.Successes)
	}
	return fmt.Sprintf("probe %d: %s (%d/%d failed in a row)", t.total, t.last.problem(), t.bad, p.health.Failures)
}
