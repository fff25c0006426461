package verify_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/verify"
)

// promServer is a server that speaks Prometheus' query API
// (/api/v1/query, by GET or by POST form) and answers recorded responses
// from testdata/prometheus in turn, the last one repeating. "slow" holds the
// answer for two seconds.
type promServer struct {
	mu      sync.Mutex
	answers []string
	queries []string
	srv     *httptest.Server
}

func newPrometheus(t *testing.T, answers ...string) *promServer {
	t.Helper()
	p := &promServer{answers: answers}
	recorded := map[string][]byte{}
	for _, a := range answers {
		if a == "slow" {
			continue
		}
		b, err := os.ReadFile(filepath.Join("testdata", "prometheus", a+".json"))
		if err != nil {
			t.Fatal(err)
		}
		recorded[a] = b
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/query", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("query") == "" {
			http.Error(w, `{"status":"error","errorType":"bad_data","error":"no query"}`, http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		n := len(p.queries)
		p.queries = append(p.queries, r.Form.Get("query"))
		a := p.answers[min(n, len(p.answers)-1)]
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case a == "slow":
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
			w.Write(recorded["healthy"])
		case strings.Contains(string(recorded[a]), `"status":"error"`):
			w.WriteHeader(http.StatusBadRequest)
			w.Write(recorded[a])
		default:
			w.Write(recorded[a])
		}
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *promServer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queries)
}

// unreachable is the URL of a server that is gone.
func unreachable(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://scraper:s3cret@" + addr
}

// analysisExecutor serves web-1 with the analyses given and no probes,
// querying the Prometheus at promURL.
func analysisExecutor(t *testing.T, promURL string, as ...targets.Analysis) *verify.Executor {
	t.Helper()
	reg, err := targets.New(map[string]targets.Target{"web-1": {Root: t.TempDir(), Verify: targets.Verify{Analyses: as}}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	q, err := (verify.Settings{PrometheusURL: promURL}).Prometheus()
	if err != nil {
		t.Fatal(err)
	}
	return &verify.Executor{Targets: reg, Client: &http.Client{}, Prometheus: q}
}

func errorRate(f func(*targets.Analysis)) targets.Analysis {
	a := targets.Analysis{Name: "error-rate", Query: `sum(rate(http_errors_total{job="billing"}[1m]))`, Condition: "< 0.05",
		Interval: targets.Duration{Duration: 20 * time.Millisecond}, Count: 3, Timeout: targets.Duration{Duration: time.Second}}
	if f != nil {
		f(&a)
	}
	return a
}

func TestAnalyses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		answers  []string // "" in place of the list: unreachable
		tune     func(*targets.Analysis)
		refs     []events.AnalysisRef
		reason   string // "" for a pass
		error    string // the step's error, exactly, when it fails
		queries  int
		summary  string // the summary line's status and value, "pass 0.012 (3 of 3 passed)"
		measured []string
	}{
		{name: "healthy", answers: []string{"healthy"}, queries: 3, summary: "pass 0.012 (3 of 3 passed)",
			measured: []string{"pass 0.012", "pass 0.012", "pass 0.012"}},
		{name: "failing fails at the first measurement", answers: []string{"failing"}, reason: verify.ReasonAnalysis, queries: 1,
			error:   "1 check failed: analysis error-rate: 0.2 (1 of 1 measurements failed, limit 0), need < 0.05",
			summary: "fail 0.2 (1 of 1 measurements failed, limit 0)", measured: []string{"fail 0.2"}},
		{name: "flapping past the failure limit", answers: []string{"healthy", "failing", "healthy", "failing", "healthy"},
			tune: func(a *targets.Analysis) { a.Count, a.FailureLimit = 5, 1 }, reason: verify.ReasonAnalysis, queries: 4,
			error:    "1 check failed: analysis error-rate: 0.2 (2 of 4 measurements failed, limit 1), need < 0.05",
			measured: []string{"pass 0.012", "fail 0.2", "pass 0.012", "fail 0.2"}},
		{name: "flapping within the failure limit", answers: []string{"healthy", "failing", "healthy", "failing", "healthy"},
			tune: func(a *targets.Analysis) { a.Count, a.FailureLimit = 5, 2 }, queries: 5, summary: "warn 0.012 (3 of 5 passed)"},
		{name: "empty is inconclusive", answers: []string{"empty"}, reason: verify.ReasonAnalysis, queries: 1,
			error:    "1 check failed: analysis error-rate: empty (1 of 1 measurements inconclusive, limit 0), need < 0.05",
			measured: []string{"warn empty"}},
		{name: "empty may pass", answers: []string{"empty"}, tune: func(a *targets.Analysis) { a.OnEmpty = targets.MeasurePass },
			queries: 3, summary: "pass empty (3 of 3 passed)"},
		{name: "empty may fail", answers: []string{"empty"}, tune: func(a *targets.Analysis) { a.OnEmpty = targets.MeasureFail },
			reason: verify.ReasonAnalysis, queries: 1, measured: []string{"fail empty"}},
		{name: "inconclusive may pass", answers: []string{"empty"},
			tune:    func(a *targets.Analysis) { a.InconclusiveLimit, a.Inconclusive = 1, targets.MeasurePass },
			queries: 3, summary: "warn empty (0 of 3 passed)"},
		{name: "unreachable", answers: nil, reason: verify.ReasonAnalysis,
			error:    "1 check failed: analysis error-rate: query failed (1 of 1 measurements inconclusive, limit 0), need < 0.05",
			measured: []string{"warn query failed"}},
		{name: "slow", answers: []string{"slow"}, tune: func(a *targets.Analysis) { a.Timeout.Duration = 100 * time.Millisecond },
			reason: verify.ReasonAnalysis, queries: 1, measured: []string{"warn no answer"}},
		{name: "a bad query", answers: []string{"bad-query"}, reason: verify.ReasonAnalysis, queries: 1, measured: []string{"warn query failed"}},
		{name: "every series must meet the condition", answers: []string{"two-series"}, reason: verify.ReasonAnalysis, queries: 1,
			measured: []string{`fail {instance="web-1:8080", job="billing"} 0.01, {instance="web-2:8080", job="billing"} 0.3`}},
		{name: "a scalar", answers: []string{"scalar"}, tune: func(a *targets.Analysis) { a.Condition = ">= 0.5" }, queries: 3,
			summary: "pass 0.5 (3 of 3 passed)"},
		{name: "NaN is inconclusive", answers: []string{"nan"}, reason: verify.ReasonAnalysis, queries: 1, measured: []string{"warn NaN"}},
		{name: "a range vector is unusable", answers: []string{"matrix"}, reason: verify.ReasonAnalysis, queries: 1,
			measured: []string{"warn unusable result"}},
		{name: "the request's threshold", answers: []string{"failing"}, refs: []events.AnalysisRef{{Name: "error-rate", Threshold: ptr(0.5)}},
			queries: 3, summary: "pass 0.2 (3 of 3 passed)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var prom *promServer
			promURL := unreachable(t)
			if tc.answers != nil {
				prom = newPrometheus(t, tc.answers...)
				promURL = prom.srv.URL
			}
			c := probeCmd("4.1", "4.2")
			c.Upgrade.Analyses = tc.refs
			var p progressLog
			out, err := analysisExecutor(t, promURL, errorRate(tc.tune)).Execute(context.Background(), c, p.report)
			if err != nil {
				t.Fatal(err)
			}
			if out.Failed != (tc.reason != "") || out.Reason != tc.reason || tc.error != "" && out.Error != tc.error {
				t.Fatalf("outcome failed=%v reason=%q error=%q, want reason %q error %q; report %+v", out.Failed, out.Reason, out.Error, tc.reason, tc.error, out.Report)
			}
			if prom != nil && tc.queries != 0 && prom.count() != tc.queries {
				t.Errorf("%d queries, want %d", prom.count(), tc.queries)
			}
			if prom != nil && prom.queries[0] != `sum(rate(http_errors_total{job="billing"}[1m]))` {
				t.Errorf("query %q", prom.queries[0])
			}
			sum := line(out, "analysis error-rate")
			if tc.summary != "" && string(sum.Status)+" "+sum.Value != tc.summary {
				t.Errorf("summary %s %q, want %q", sum.Status, sum.Value, tc.summary)
			}
			if sum.Threshold == "" || (sum.Status == events.CheckFail) != out.Failed {
				t.Errorf("summary %+v", sum)
			}
			for i, want := range tc.measured {
				l := line(out, "analysis error-rate #"+string(rune('1'+i)))
				if got := string(l.Status) + " " + l.Value; got != want || l.Threshold == "" {
					t.Errorf("measurement %d: %q (threshold %q), want %q", i+1, got, l.Threshold, want)
				}
			}
			for _, l := range out.Report {
				if strings.Contains(l.Detail+l.Value, "s3cret") {
					t.Errorf("the Prometheus password in %+v", l)
				}
			}
			if strings.Contains(out.Error, "s3cret") {
				t.Errorf("the Prometheus password in %q", out.Error)
			}
			if !slices.ContainsFunc(p.msgs, func(m string) bool { return strings.HasPrefix(m, "analysis error-rate #1: ") }) {
				t.Errorf("progress %q", p.msgs)
			}
		})
	}
}

func ptr(v float64) *float64 { return &v }

func TestAnalysisDetailSaysWhy(t *testing.T) {
	t.Parallel()
	for answer, says := range map[string]string{
		"":          "connection refused",
		"slow":      "no answer within 100ms",
		"bad-query": "bad_data: invalid parameter",
		"empty":     "no samples; counted inconclusive",
		"matrix":    "a matrix result: the query must return an instant vector or a scalar",
	} {
		promURL := unreachable(t)
		if answer != "" {
			promURL = newPrometheus(t, answer).srv.URL
		}
		out, err := analysisExecutor(t, promURL, errorRate(func(a *targets.Analysis) { a.Timeout.Duration = 100 * time.Millisecond })).
			Execute(context.Background(), probeCmd("4.1", "4.2"), func(string) {})
		if err != nil {
			t.Fatal(err)
		}
		if l := line(out, "analysis error-rate #1"); !strings.Contains(l.Detail, says) {
			t.Errorf("%s: detail %q, want %q", answer, l.Detail, says)
		}
	}
}

// Analyses run for the whole verification: one that needs more time than
// the step has fails at the deadline, not at the coordinator's time-out.
func TestAnalysisPastTheDeadlineFails(t *testing.T) {
	t.Parallel()
	prom := newPrometheus(t, "healthy")
	c := probeCmd("4.1", "4.2")
	c.Deadline = time.Now().Add(1300 * time.Millisecond)
	out, err := analysisExecutor(t, prom.srv.URL, errorRate(func(a *targets.Analysis) { a.Interval.Duration, a.Count = 100*time.Millisecond, 100 })).
		Execute(context.Background(), c, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	if !time.Now().Before(c.Deadline) || !out.Failed || out.Reason != verify.ReasonAnalysis ||
		!strings.Contains(out.Error, "of 100 measurements before the step's deadline") {
		t.Fatalf("outcome %+v", out)
	}
}

// Optional analyses run only when selected; selecting one the target does
// not declare, or having analyses without a Prometheus, cannot verify.
func TestAnalysisSelection(t *testing.T) {
	t.Parallel()
	prom := newPrometheus(t, "failing")
	latency := errorRate(func(a *targets.Analysis) { a.Name, a.Optional, a.Query = "latency", true, "p99" })

	out, _ := analysisExecutor(t, prom.srv.URL, errorRate(func(a *targets.Analysis) { a.Condition = "< 1" }), latency).
		Execute(context.Background(), probeCmd("4.1", "4.2"), func(string) {})
	if out.Failed || line(out, "analysis latency").Name != "(missing analysis latency)" {
		t.Fatalf("the optional analysis ran unselected: %+v", out)
	}
	c := probeCmd("4.1", "4.2")
	c.Upgrade.Analyses = []events.AnalysisRef{{Name: "latency"}}
	out, _ = analysisExecutor(t, prom.srv.URL, errorRate(func(a *targets.Analysis) { a.Condition = "< 1" }), latency).
		Execute(context.Background(), c, func(string) {})
	if !out.Failed || !strings.Contains(out.Error, "analysis latency: 0.2") {
		t.Fatalf("selected optional analysis: %+v", out)
	}

	c.Upgrade.Analyses = []events.AnalysisRef{{Name: "saturation"}}
	out, _ = analysisExecutor(t, prom.srv.URL, errorRate(nil)).Execute(context.Background(), c, func(string) {})
	if out.Reason != verify.ReasonNotConfigured || !strings.Contains(out.Error, "does not declare: saturation") {
		t.Fatalf("unknown analysis: %+v", out)
	}
	out, _ = analysisExecutor(t, "", errorRate(nil)).Execute(context.Background(), probeCmd("4.1", "4.2"), func(string) {})
	if out.Reason != verify.ReasonNotConfigured || !strings.Contains(out.Error, "no Prometheus URL") {
		t.Fatalf("no Prometheus: %+v", out)
	}
}

func TestPrometheusURLIsChecked(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"prometheus:9090", "ftp://prometheus", "http://"} {
		if _, err := (verify.Settings{PrometheusURL: u}).Prometheus(); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
	if _, err := url.Parse(unreachable(t)); err != nil {
		t.Fatal(err)
	}
}
