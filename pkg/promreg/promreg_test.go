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
