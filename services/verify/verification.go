package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/upshift/upshift/pkg/checks"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/targets"
)

// verification is one verify or watch step on one target: the probes, then
// the smoke commands, with the analyses running alongside from the start.
type verification struct {
	e        *Executor
	t        targets.Target
	expect   string
	analyses []analysis
	stopAt   time.Time
	watching bool
	progress phase.Progress
}

// analysisRun is the analyses running alongside the probes.
type analysisRun struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	results []analysisResult
	// failed is closed when the first analysis fails.
	failed chan struct{}
	once   sync.Once
}

func (v *verification) startAnalyses(ctx context.Context) *analysisRun {
	ctx, cancel := context.WithCancel(ctx)
	r := &analysisRun{cancel: cancel, results: make([]analysisResult, len(v.analyses)), failed: make(chan struct{})}
	for i, a := range v.analyses {
		r.wg.Go(func() {
			res := a.run(ctx, v.e.Prometheus, v.stopAt, v.watching, v.progress)
			r.results[i] = res
			if res.err == nil && !res.passed {
				r.once.Do(func() { close(r.failed) })
			}
		})
	}
	return r
}

// stop ends the analyses now and waits for them.
func (r *analysisRun) stop() { r.cancel(); r.wg.Wait() }

// wait waits for the analyses to end by themselves.
func (r *analysisRun) wait() { r.wg.Wait(); r.cancel() }

func (r *analysisRun) lines() []events.ReportLine {
	var out []events.ReportLine
	for _, res := range r.results {
		out = append(out, res.lines()...)
	}
	return out
}

// failures lists the failed analyses with their values, for the error.
func (r *analysisRun) failures() string {
	var sums []events.ReportLine
	for _, res := range r.results {
		if res.err == nil && !res.passed {
			sums = append(sums, res.lines()[0])
		}
	}
	return checks.Failures(sums)
}

func (r *analysisRun) anyFailed() bool {
	select {
	case <-r.failed:
		return true
	default:
		return false
	}
}

func (v *verification) run(ctx context.Context) (phase.Outcome, error) {
	an := v.startAnalyses(ctx)
	defer an.stop()
	out := map[string]string{}
	var report []events.ReportLine
	fail := func(reason string, err error) (phase.Outcome, error) {
		an.stop()
		if ctx.Err() != nil {
			return phase.Outcome{}, fmt.Errorf("verify: %w", ctx.Err())
		}
		o := phase.Failure(reason, err, append(report, an.lines()...)...)
		o.Output = out
		return o, nil
	}

	if probes(v.t) {
		p := newProber(v.e.client(), v.t, v.expect, v.watching)
		res, err := p.run(ctx, v.stopAt, an.failed, v.progress)
		if err != nil {
			return phase.Outcome{}, err
		}
		out = p.output(res.t)
		report = p.report(res)
		if !res.passed && !res.aborted {
			return fail(res.reason, res.err)
		}
	}
	if !v.watching && len(v.t.Verify.Smoke) > 0 && !an.anyFailed() {
		lines := smoke(ctx, v.t, v.expect, v.stopAt, v.progress)
		if ctx.Err() != nil {
			return phase.Outcome{}, fmt.Errorf("verify: %w", ctx.Err())
		}
		report = append(report, lines...)
		if f := checks.Failures(lines); f != "" {
			return fail(ReasonSmokeFailed, errors.New(f))
		}
	}
	if len(v.analyses) > 0 {
		v.progress(fmt.Sprintf("waiting for %d analyses: %s", len(v.analyses), names(v.analyses)))
	}
	an.wait()
	if ctx.Err() != nil {
		return phase.Outcome{}, fmt.Errorf("verify: %w", ctx.Err())
	}
	if f := an.failures(); f != "" {
		return fail(ReasonAnalysis, errors.New(f))
	}
	report = append(report, an.lines()...)
	out["analyses"] = analysesSummary(an.results)
	if out["analyses"] == "" {
		delete(out, "analyses")
	}
	return phase.Success(out, report...), nil
}

// analysesSummary is "error-rate 3/3, latency 3/3": passed of measured.
func analysesSummary(rs []analysisResult) string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s %d/%d", r.a.Name, r.pass, r.n))
	}
	return strings.Join(out, ", ")
}
