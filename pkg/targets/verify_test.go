package targets_test

import (
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/targets"
)

// Verify's defaults are merged like precheck's, and each check gets its
// defaults.
func TestVerifyDefaultsAreMerged(t *testing.T) {
	r, err := targets.Parse([]byte(`
defaults:
  verify:
    timeout: 2s
    tcp: [{address: "db-1:5432"}]
    analyses:
      - {name: error-rate, query: 'sum(rate(errors[1m]))', condition: "< 0.05"}
      - {name: latency, query: 'p99', condition: "<= 0.3", optional: true, interval: 10s, count: 5}
targets:
  web-1:
    root: /srv/web1
    verify:
      http: [{name: api, url: "http://127.0.0.1:8080/api/ping", jsonField: version, jsonValue: "${version}", maxLatency: 300ms}]
      smoke: [{name: login, command: [bin/smoke, login]}]
      analyses:
        - {name: error-rate, query: 'sum(rate(errors{job="web-1"}[1m]))', condition: "< 0.01", failureLimit: 1}
  web-2:
    root: /srv/web2
`), "/etc/upshift")
	if err != nil {
		t.Fatal(err)
	}
	w1, _ := r.Get("web-1")
	w2, _ := r.Get("web-2")
	v1, v2 := w1.Verify, w2.Verify
	if len(v1.TCP) != 1 || len(v2.TCP) != 1 || v1.TCP[0].Timeout.Duration != 2*time.Second {
		t.Fatalf("tcp %+v / %+v", v1.TCP, v2.TCP)
	}
	if h := v1.HTTP[0]; h.Timeout.Duration != 2*time.Second || h.MaxLatency.Duration != 300*time.Millisecond || len(v2.HTTP) != 0 {
		t.Fatalf("http %+v", v1.HTTP)
	}
	if s := v1.Smoke[0]; s.Timeout.Duration != targets.DefaultSmokeTimeout {
		t.Fatalf("smoke %+v", s)
	}
	a1, _ := v1.Analysis("error-rate")
	a2, _ := v2.Analysis("error-rate")
	if a1.Condition != "< 0.01" || a1.FailureLimit != 1 || a2.Condition != "< 0.05" || v1.Analyses[0].Name != "error-rate" {
		t.Fatalf("analyses %+v / %+v", v1.Analyses, v2.Analyses)
	}
	if a2.Interval.Duration != targets.DefaultAnalysisInterval || a2.Count != targets.DefaultAnalysisCount ||
		a2.OnEmpty != targets.MeasureInconclusive || a2.Inconclusive != targets.MeasureFail || a2.Timeout.Duration != targets.DefaultCheckTimeout {
		t.Fatalf("analysis defaults %+v", a2)
	}
	if l, _ := v2.Analysis("latency"); !l.Optional || l.Count != 5 || l.Interval.Duration != 10*time.Second {
		t.Fatalf("latency %+v", l)
	}
	if v2.Empty() || (targets.Verify{}).Empty() == false {
		t.Fatal("Empty")
	}
}

func TestVerifyRefuses(t *testing.T) {
	for _, c := range []struct{ verify, says string }{
		{`{http: [{url: "http://a"}]}`, "needs a name"},
		{`{http: [{name: a, url: "ftp://a"}]}`, "verify: http a: url"},
		{`{http: [{name: a, url: "http://a", status: 7}]}`, "not an HTTP status"},
		{`{http: [{name: a, url: "http://a", body: "("}]}`, "verify: http a: pattern"},
		{`{http: [{name: a, url: "http://a", jsonValue: x}]}`, "jsonValue needs a jsonField"},
		{`{http: [{name: a, url: "http://a"}, {name: a, url: "http://b"}]}`, `two http checks named "a"`},
		{`{tcp: [{address: db}]}`, "host:port"},
		{`{smoke: [{name: s}]}`, "needs a command"},
		{`{analyses: [{name: a, condition: "< 1"}]}`, "needs a query"},
		{`{analyses: [{name: a, query: up, condition: "about 1"}]}`, "write an operator"},
		{`{analyses: [{name: a, query: up, condition: "< lots"}]}`, "not a number"},
		{`{analyses: [{name: A_1, query: up, condition: "< 1"}]}`, "lower-case"},
		{`{analyses: [{name: a, query: up, condition: "< 1", count: -1}]}`, "negative"},
		{`{analyses: [{name: a, query: up, condition: "< 1", onEmpty: ignore}]}`, "onEmpty"},
		{`{analyses: [{name: a, query: up, condition: "< 1", inconclusive: retry}]}`, "inconclusive is fail or pass"},
		{`{analyses: [{name: a, query: up, condition: "< 1", url: "http://prom"}]}`, "unknown"},
	} {
		_, err := targets.Parse([]byte("targets: {web-1: {root: /a, verify: "+c.verify+"}}"), "/")
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want %q", c.verify, err, c.says)
		}
	}
}

func TestConditions(t *testing.T) {
	for _, c := range []struct {
		cond string
		v    float64
		want bool
	}{
		{"< 0.05", 0.01, true}, {"< 0.05", 0.05, false}, {"<= 0.05", 0.05, true}, {">0.99", 0.995, true},
		{">= 1", 0.5, false}, {"== 0", 0, true}, {"!= 0", 0, false}, {" >= 1e3 ", 1000, true},
	} {
		cond, err := targets.ParseCondition(c.cond)
		if err != nil {
			t.Fatalf("%q: %v", c.cond, err)
		}
		if got := cond.Holds(c.v); got != c.want {
			t.Errorf("%s holds for %g: %v", cond, c.v, got)
		}
	}
	if c, _ := targets.ParseCondition(">=0.5"); c.String() != ">= 0.5" {
		t.Fatalf("String %q", c)
	}
}

// The example file shows every kind of verify check.
func TestExampleTargetsFileShowsTheVerifyChecks(t *testing.T) {
	r, err := targets.Load("../../examples/targets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range r.Names() {
		tg, _ := r.Get(name)
		v := tg.Verify
		if len(v.HTTP) == 0 || len(v.TCP) == 0 || len(v.Smoke) == 0 || len(v.Analyses) < 2 {
			t.Errorf("%s: the example shows every kind of verify check: %+v", name, v)
		}
		if a, _ := v.Analysis("error-rate"); a.Condition != "< 0.5" || a.Count != 3 || a.FailureLimit != 0 {
			t.Errorf("%s: the target's error-rate replaces the default's: %+v", name, a)
		}
		if a, _ := v.Analysis("p99-latency"); !a.Optional {
			t.Errorf("%s: p99-latency %+v", name, a)
		}
	}
}
