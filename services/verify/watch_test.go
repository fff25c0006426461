package verify_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/verify"
)

// watchCmd is a watch of web-1 that ends after d.
func watchCmd(d time.Duration) events.Command {
	c := probeCmd("4.1", "4.2")
	c.Step, c.Action = "s.verify.watch.web-1.1", events.ActionWatch
	c.NotAfter = time.Now().Add(d)
	c.Deadline = c.NotAfter.Add(30 * time.Second)
	return c
}

// watchExecutor serves web-1 with an app answering statuses and an
// analysis against answers.
func watchExecutor(t *testing.T, statuses []int, answers ...string) *verify.Executor {
	t.Helper()
	app := newApp(t, "", "4.2", statuses...)
	q, err := (verify.Settings{PrometheusURL: newPrometheus(t, answers...).srv.URL}).Prometheus()
	if err != nil {
		t.Fatal(err)
	}
	tg := targets.Target{Root: t.TempDir(), Health: app.health(2, 3),
		Verify: targets.Verify{Analyses: []targets.Analysis{errorRate(func(a *targets.Analysis) { a.Interval.Duration = 50 * time.Millisecond })}}}
	reg, err := targets.New(map[string]targets.Target{"web-1": tg}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &verify.Executor{Targets: reg, Client: &http.Client{}, Prometheus: q}
}

func TestWatch(t *testing.T) {
	t.Parallel()
	const ok, down = http.StatusOK, http.StatusServiceUnavailable
	for _, tc := range []struct {
		name     string
		statuses []int
		answers  []string
		reason   string
		error    string
	}{
		{name: "healthy to the end", statuses: []int{ok}, answers: []string{"healthy"}},
		{name: "a bad probe now and then", statuses: []int{ok, down, ok, ok, down, down, ok}, answers: []string{"healthy"}},
		{name: "an analysis fails", statuses: []int{ok}, answers: []string{"healthy", "healthy", "failing"},
			reason: verify.ReasonAnalysis, error: "analysis error-rate: 0.2 (1 of 3 measurements failed, limit 0), need < 0.05"},
		{name: "the probes fail", statuses: []int{ok, ok, down}, answers: []string{"healthy"},
			reason: verify.ReasonUnhealthy, error: "health 503 Service Unavailable, 3 probes in a row"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := watchCmd(800 * time.Millisecond)
			out, err := watchExecutor(t, tc.statuses, tc.answers...).Execute(context.Background(), c, func(string) {})
			if err != nil {
				t.Fatal(err)
			}
			if out.Failed != (tc.reason != "") || out.Reason != tc.reason || !strings.Contains(out.Error, tc.error) {
				t.Fatalf("outcome failed=%v %s: %q, want %s %q; report %+v", out.Failed, out.Reason, out.Error, tc.reason, tc.error, out.Report)
			}
			switch {
			case !out.Failed && time.Now().Before(c.NotAfter):
				t.Fatalf("passed before the end of the watch")
			case out.Failed && !time.Now().Before(c.NotAfter):
				t.Fatalf("failed only at the end of the watch, not when it failed")
			}
			if !out.Failed {
				// The analysis kept measuring past its count, at its interval.
				sum := line(out, "analysis error-rate")
				if sum.LineStatus() != events.CheckPass || !strings.Contains(sum.Detail, "measured") || strings.HasPrefix(sum.Detail, "3 measured") {
					t.Fatalf("summary %+v", sum)
				}
				if p := line(out, "probes"); !strings.Contains(p.Detail, "probes while watching, never 3 failed in a row") {
					t.Fatalf("probes %+v", p)
				}
			}
		})
	}
}

// A watch executed again after its period (a crash before its result was
// recorded) reports on the target as it is now.
func TestWatchAgainAfterItsPeriodChecksOnce(t *testing.T) {
	t.Parallel()
	c := watchCmd(-time.Second)
	out, err := watchExecutor(t, []int{http.StatusOK}, "healthy").Execute(context.Background(), c, func(string) {})
	if err != nil || out.Failed || out.Output["probes"] != "1" || line(out, "analysis error-rate #1").Value != "0.012" {
		t.Fatalf("outcome %+v, err %v", out, err)
	}
	out, _ = watchExecutor(t, []int{http.StatusOK}, "failing").Execute(context.Background(), c, func(string) {})
	if !out.Failed || out.Reason != verify.ReasonAnalysis {
		t.Fatalf("outcome %+v", out)
	}
}
