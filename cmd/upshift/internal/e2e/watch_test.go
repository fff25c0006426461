package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/coordinator"
)

// errorRate is a Prometheus-compatible query API answering the demo's error
// rate, in Prometheus' JSON format: 0.01 until failing is set, then 0.2.
type errorRate struct {
	failing atomic.Bool
	queries atomic.Int32
	srv     *httptest.Server
}

func newErrorRate(t *testing.T) *errorRate {
	e := &errorRate{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" || r.ParseForm() != nil || r.Form.Get("query") != `sum(rate(demo_errors_total[1m]))` {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"unexpected query"}`)
			return
		}
		e.queries.Add(1)
		v := "0.01"
		if e.failing.Load() {
			v = "0.2"
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"demo"},"value":[%d.5,%q]}]}}`, time.Now().Unix(), v)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// analysed gives the demo target an optional error-rate analysis, measured
// every 200ms.
func analysed(tg *targets.Target) {
	tg.Verify.Analyses = []targets.Analysis{{Name: "error-rate", Query: `sum(rate(demo_errors_total[1m]))`, Condition: "< 0.5",
		Optional: true, Interval: targets.Duration{Duration: 200 * time.Millisecond}, Count: 2, Timeout: targets.Duration{Duration: 2 * time.Second}}}
}

// The environment's policy asks for a watch period and the error-rate
// analysis; the request sets its threshold. The upgrade verifies, the saga
// watches, the error rate climbs: the whole saga rolls back, and the
// failing measurement is in the report, the reason and the notices.
func TestAFailingAnalysisInTheWatchPeriodRollsBack(t *testing.T) {
	endToEnd(t)
	prom := newErrorRate(t)
	policy := coordinator.Policy{Environments: map[string]coordinator.Environment{
		"test": {Verify: spec.Verify{Watch: spec.Duration{Duration: 2 * time.Minute}, Analyses: []spec.AnalysisRef{{Name: "error-rate"}}}}}}
	r := newRigAnalysed(t, prom.srv.URL, "1.0", policy, analysed)
	req := r.d.Request("1.0", "1.1")
	threshold := 0.05
	req.Spec.Verify.Analyses = []spec.AnalysisRef{{Name: "error-rate", Threshold: &threshold}}
	id := r.submit(req)

	s := r.reach(id, saga.StateWatching)
	if end := s.WatchEnds(); end.Sub(s.EnteredAt) != 2*time.Minute || !s.Deadline.Equal(end.Add(saga.WatchGrace)) {
		t.Fatalf("watching from %v until %v, deadline %v", s.EnteredAt, end, s.Deadline)
	}
	if r.serving() != "1.1" {
		t.Fatalf("serving %s while watching", r.serving())
	}
	var probe *saga.Step
	for i := range s.Steps {
		if s.Steps[i].Action == events.ActionProbe {
			probe = s.Steps[i]
		}
	}
	if probe == nil || probe.Status != saga.StepSucceeded || !reportHas(probe.Report, "analysis error-rate", events.CheckPass, "< 0.05") ||
		!reportHas(probe.Report, "analysis error-rate #2", events.CheckPass, "< 0.05") {
		t.Fatalf("the verification's report lacks the analysis: %+v", probe)
	}

	prom.failing.Store(true)
	_, end := r.end(id)
	if end.Kind != string(saga.StateRolledBack) || !strings.Contains(end.Reason, "verify watch on demo failed") ||
		!strings.Contains(end.Reason, "analysis error-rate: 0.2") || !strings.Contains(end.Reason, "need < 0.05") {
		t.Fatalf("saga %s ended %s: %s", id, end.Kind, end.Reason)
	}
	if v := r.serving(); v != "1.0" {
		t.Fatalf("serving %s after the roll-back", v)
	}
	v, err := r.s.Client.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var watch *saga.Step
	for i := range v.Saga.Steps {
		if v.Saga.Steps[i].Action == events.ActionWatch {
			watch = v.Saga.Steps[i]
		}
	}
	if watch == nil || watch.Status != saga.StepFailed || watch.Reason != "analysis_failed" ||
		!reportHas(watch.Report, "analysis error-rate", events.CheckFail, "< 0.05") || time.Since(watch.FinishedAt) > time.Minute {
		t.Fatalf("watch step %+v", watch)
	}
	natstest.Eventually(t, natstest.Patience, "the teams told what failed", func() bool {
		for _, n := range natstest.ReadEvents[events.Notice](t, r.s.JS, events.StreamNotify, "upshift.notify.platform."+id+".>", events.TypeNotice) {
			if n.Kind == events.KindStepFailed && strings.Contains(n.Summary, "analysis error-rate: 0.2") {
				return true
			}
		}
		return false
	})
}

func reportHas(lines []events.ReportLine, name string, status events.CheckStatus, threshold string) bool {
	for _, l := range lines {
		if l.Name == name && l.LineStatus() == status && l.Threshold == threshold {
			return true
		}
	}
	return false
}
