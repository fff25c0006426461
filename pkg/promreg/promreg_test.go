package promreg_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/upshift/upshift/pkg/promreg"
)

func TestSecondRegistrationSharesTheFirstCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "x_total", Help: "x"}
	a := promreg.Register(reg, prometheus.NewCounterVec(opts, []string{"service"}))
	b := promreg.Register(reg, prometheus.NewCounterVec(opts, []string{"service"}))
	a.WithLabelValues("deploy").Inc()
	b.WithLabelValues("verify").Inc()
	if n := testutil.CollectAndCount(reg); n != 2 {
		t.Fatalf("%d series, want 2 in one family", n)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a clashing collector was accepted")
		}
	}()
	promreg.Register(reg, prometheus.NewCounterVec(opts, []string{"other"}))
}

func TestValueSumsTheMatchingSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "y_total", Help: "y"}, []string{"service", "result"}))
	c.WithLabelValues("deploy", "ok").Add(2)
	c.WithLabelValues("deploy", "failed").Add(1)
	c.WithLabelValues("verify", "ok").Add(4)
	for _, tc := range []struct {
		labels []string
		want   float64
	}{{nil, 7}, {[]string{"service", "deploy"}, 3}, {[]string{"service", "deploy", "result", "ok"}, 2}, {[]string{"result", "nope"}, 0}} {
		if got, err := promreg.Value(reg, "y_total", tc.labels...); err != nil || got != tc.want {
			t.Errorf("%v: %v %v, want %v", tc.labels, got, err, tc.want)
		}
	}
}
