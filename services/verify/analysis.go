package verify

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/targets"
)

// keptMeasurements is how many measurements of one analysis the report
// keeps, the latest: a watch of an hour measures a hundred times.
const keptMeasurements = 10

// Querier runs an instant PromQL query: promv1.API is one.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error)
}

// analysis is one analysis of a verification, with the threshold its
// request or policy set.
type analysis struct {
	targets.Analysis
	cond targets.Condition
}

// measurement is one query and what it came to.
type measurement struct {
	n       int
	outcome string // targets.MeasurePass, MeasureFail or MeasureInconclusive
	value   string
	detail  string
	took    time.Duration
}

// analysisResult is how an analysis ended.
type analysisResult struct {
	a        analysis
	ms       []measurement // the last keptMeasurements
	n        int
	pass     int
	fail     int
	unsure   int
	lastBad  string // value of the last failed or inconclusive measurement
	lastSeen string
	// verdict: pass, fail; reason says why a failure failed.
	passed bool
	reason string
	err    error // ctx's, when interrupted
}

// selectAnalyses returns the target's analyses a verification runs: every
// one that is not optional, and those the request or policy select, with
// the threshold they set. Selecting one the target does not declare is an
// error: what cannot be verified must not pass.
func selectAnalyses(t targets.Target, refs []events.AnalysisRef) ([]analysis, error) {
	var out []analysis
	index := map[string]int{}
	for _, a := range t.Verify.Analyses {
		if a.Optional {
			continue
		}
		cond, err := targets.ParseCondition(a.Condition)
		if err != nil {
			return nil, fmt.Errorf("analysis %s: %w", a.Name, err)
		}
		index[a.Name] = len(out)
		out = append(out, analysis{Analysis: a, cond: cond})
	}
	var missing []string
	for _, ref := range refs {
		a, ok := t.Verify.Analysis(ref.Name)
		if !ok {
			missing = append(missing, ref.Name)
			continue
		}
		cond, err := targets.ParseCondition(a.Condition)
		if err != nil {
			return nil, fmt.Errorf("analysis %s: %w", a.Name, err)
		}
		if ref.Threshold != nil {
			cond.Threshold = *ref.Threshold
		}
		if i, ok := index[a.Name]; ok {
			out[i].cond = cond
			continue
		}
		index[a.Name] = len(out)
		out = append(out, analysis{Analysis: a, cond: cond})
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the request or the environment selects analyses target %s does not declare: %s",
			t.Name, strings.Join(missing, ", "))
	}
	return out, nil
}

// run measures every Interval: Count times, or, when watching, until
// stopAt. It ends early once the analysis has failed. ctx's end is an
// interruption, not a verdict.
func (a analysis) run(ctx context.Context, q Querier, stopAt time.Time, watching bool, progress func(string)) analysisResult {
	r := analysisResult{a: a}
	for {
		if !watching && r.n >= a.Count {
			break
		}
		// A watch measures at least once, even executed again after its
		// period, as its probes do.
		if !stopAt.IsZero() && !time.Now().Before(stopAt) && (!watching || r.n > 0) {
			break
		}
		m := a.measure(ctx, q, stopAt)
		m.n = r.n + 1
		if err := ctx.Err(); err != nil {
			r.err = err
			return r
		}
		r.add(m)
		if progress != nil {
			progress(fmt.Sprintf("analysis %s #%d: %s %s (%s)", a.Name, m.n, m.outcome, m.value, a.cond))
		}
		if r.fail > a.FailureLimit || r.unsure > a.InconclusiveLimit && a.Inconclusive == targets.MeasureFail {
			break
		}
		if !watching && r.n >= a.Count {
			break
		}
		next := time.Now().Add(a.Interval.Duration)
		if !stopAt.IsZero() && next.After(stopAt) {
			next = stopAt
		}
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			r.err = ctx.Err()
			return r
		case <-timer.C:
		}
	}
	r.judge(watching)
	return r
}

func (r *analysisResult) add(m measurement) {
	r.n++
	switch m.outcome {
	case targets.MeasurePass:
		r.pass++
	case targets.MeasureFail:
		r.fail++
		r.lastBad = m.value
	default:
		r.unsure++
		r.lastBad = m.value
	}
	r.lastSeen = m.value
	r.ms = append(r.ms, m)
	if len(r.ms) > keptMeasurements {
		r.ms = r.ms[len(r.ms)-keptMeasurements:]
	}
}

// judge settles the verdict once measuring has stopped.
func (r *analysisResult) judge(watching bool) {
	a := r.a
	switch {
	case r.fail > a.FailureLimit:
		r.reason = fmt.Sprintf("%d of %d measurements failed, limit %d", r.fail, r.n, a.FailureLimit)
	case r.unsure > a.InconclusiveLimit && a.Inconclusive == targets.MeasureFail:
		r.reason = fmt.Sprintf("%d of %d measurements inconclusive, limit %d", r.unsure, r.n, a.InconclusiveLimit)
	case !watching && r.n < a.Count:
		r.reason = fmt.Sprintf("%d of %d measurements before the step's deadline", r.n, a.Count)
	case r.n == 0:
		r.reason = "no measurement before the end of the watch"
	default:
		r.passed = true
	}
}

// measure runs the query once, within the analysis' time-out and before
// stopAt, and holds every sample of the result against the condition.
func (a analysis) measure(ctx context.Context, q Querier, stopAt time.Time) measurement {
	m := measurement{outcome: targets.MeasureInconclusive}
	timeout := a.Timeout.Duration
	if left := time.Until(stopAt); !stopAt.IsZero() && left > 0 {
		timeout = max(min(timeout, left), 10*time.Millisecond)
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	v, _, _, err := q.Query(qctx, a.Query, start, promv1.WithTimeout(timeout))
	m.took = time.Since(start)
	switch {
	case ctx.Err() != nil:
		m.value, m.detail = "interrupted", ctx.Err().Error()
		return m
	case err != nil && errors.Is(qctx.Err(), context.DeadlineExceeded):
		m.value, m.detail = "no answer", fmt.Sprintf("no answer within %s", timeout)
		return m
	case err != nil:
		m.value, m.detail = "query failed", queryError(err)
		return m
	}
	samples, err := values(v)
	if err != nil {
		m.value, m.detail = "unusable result", err.Error()
		return m
	}
	if len(samples) == 0 {
		m.value, m.outcome = "empty", a.OnEmpty
		m.detail = "the query returned no samples; counted " + a.OnEmpty
		return m
	}
	m.outcome = targets.MeasurePass
	var shown []string
	for _, s := range samples {
		switch {
		case math.IsNaN(s.v):
			if m.outcome == targets.MeasurePass {
				m.outcome = targets.MeasureInconclusive
			}
		case !a.cond.Holds(s.v):
			m.outcome = targets.MeasureFail
		}
		shown = append(shown, s.String())
	}
	m.value = strings.Join(shown[:min(len(shown), 3)], ", ")
	if len(shown) > 3 {
		m.value += fmt.Sprintf(" (+%d more)", len(shown)-3)
	}
	return m
}

// sample is one number of a result and the series it belongs to.
type sample struct {
	labels string
	v      float64
}

func (s sample) String() string {
	v := strconv.FormatFloat(s.v, 'g', 6, 64)
	if s.labels == "" || s.labels == "{}" {
		return v
	}
	return s.labels + " " + v
}

func values(v model.Value) ([]sample, error) {
	switch x := v.(type) {
	case model.Vector:
		out := make([]sample, 0, len(x))
		for _, s := range x {
			out = append(out, sample{labels: s.Metric.String(), v: float64(s.Value)})
		}
		// Only one series: its labels say nothing the query did not.
		if len(out) == 1 {
			out[0].labels = ""
		}
		return out, nil
	case *model.Scalar:
		return []sample{{v: float64(x.Value)}}, nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("a %s result: the query must return an instant vector or a scalar", v.Type())
}

// queryError says why a query failed without the server's URL, which may
// carry credentials.
func queryError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var pe *promv1.Error
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s: %s", pe.Type, pe.Msg)
	}
	return err.Error()
}

// lines reports the analysis: a summary, then its kept measurements.
func (r analysisResult) lines() []events.ReportLine {
	a := r.a
	sum := events.ReportLine{Name: "analysis " + a.Name, OK: r.passed, Status: events.CheckPass, Threshold: a.cond.String(),
		Detail: fmt.Sprintf("%d measured: %d passed, %d failed, %d inconclusive; every %s, failure limit %d, inconclusive limit %d",
			r.n, r.pass, r.fail, r.unsure, a.Interval, a.FailureLimit, a.InconclusiveLimit)}
	switch {
	case r.err != nil:
		sum.Status = events.CheckWarn
		sum.Value = fmt.Sprintf("stopped after %d of %d", r.n, a.Count)
	case !r.passed:
		sum.Status = events.CheckFail
		what := r.lastBad
		if what == "" {
			what = r.lastSeen
		}
		sum.Value = strings.TrimSpace(what + " (" + r.reason + ")")
	default:
		sum.Value = fmt.Sprintf("%s (%d of %d passed)", r.lastSeen, r.pass, r.n)
		if r.unsure > 0 || r.fail > 0 {
			sum.Status = events.CheckWarn
		}
	}
	out := []events.ReportLine{sum}
	for _, m := range r.ms {
		l := events.ReportLine{Name: fmt.Sprintf("analysis %s #%d", a.Name, m.n), OK: m.outcome != targets.MeasureFail,
			Value: m.value, Threshold: a.cond.String(), Detail: m.detail, Duration: m.took}
		switch m.outcome {
		case targets.MeasurePass:
			l.Status = events.CheckPass
		case targets.MeasureFail:
			l.Status = events.CheckFail
		default:
			l.Status = events.CheckWarn
		}
		out = append(out, l)
	}
	return out
}
