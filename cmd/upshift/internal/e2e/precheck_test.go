package e2e_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/coordinator"
)

// A failed environment check of each kind fails the saga with nothing
// deployed, and names the check and what it measured in the saga's status
// and in every team's notices.
func TestAFailedEnvironmentCheckFailsTheSaga(t *testing.T) {
	endToEnd(t)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "ledger unavailable", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for _, c := range []struct {
		category, check, says string
		tune                  func(*targets.Target)
	}{
		{"hardware", "memory", "need >= 1000.0TiB", func(t *targets.Target) { t.Precheck.MinMemory = 1000 << 40 }},
		{"software", "os", "need kernel <1", func(t *targets.Target) { t.Precheck.OS = &targets.OSCheck{Kernel: "<1"} }},
		{"network", "tcp billing-db", "connection refused", func(t *targets.Target) {
			t.Precheck.Endpoints = append(t.Precheck.Endpoints, targets.EndpointCheck{Name: "billing-db", Address: closed})
		}},
		{"dependency", "dependency ledger", "HTTP 503", func(t *targets.Target) {
			t.Precheck.Dependencies = append(t.Precheck.Dependencies, targets.DependencyCheck{Name: "ledger", URL: down.URL})
		}},
	} {
		t.Run(c.category, func(t *testing.T) {
			t.Parallel()
			r := newRigWith(t, "1.0", coordinator.Policy{}, c.tune)
			id, end := r.run(r.d.Request("1.0", "1.1"))
			named := c.check + ": "
			if end.Kind != string(saga.StateFailed) || !strings.Contains(end.Reason, named) || !strings.Contains(end.Reason, c.says) {
				t.Fatalf("saga %s ended %s: %s", id, end.Kind, end.Reason)
			}
			// Nothing deployed.
			if cur, _ := r.d.Target.CurrentVersion(); cur != "1.0" {
				t.Fatalf("current is %s", cur)
			}
			if _, err := os.Stat(r.d.Target.Release("1.1")); !os.IsNotExist(err) {
				t.Fatalf("release 1.1 exists: %v", err)
			}
			if v := r.serving(); v != "1.0" {
				t.Fatalf("serving %s", v)
			}
			// The status: one precheck step, its error and its report name the check.
			v, err := r.s.Client.Get(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if len(v.Saga.Steps) != 1 || !strings.Contains(v.Saga.Steps[0].Error, named) {
				t.Fatalf("steps %+v", v.Saga.Steps)
			}
			var failed []string
			for _, l := range v.Saga.Steps[0].Report {
				if l.LineStatus() == events.CheckFail {
					failed = append(failed, l.Name)
				}
			}
			if strings.Join(failed, ",") != c.check {
				t.Fatalf("failed checks %v in %+v", failed, v.Saga.Steps[0].Report)
			}
			// Every team is told which check failed, and why.
			natstest.Eventually(t, natstest.Patience, "both teams told of the failed check", func() bool {
				told := map[string]bool{}
				for _, n := range natstest.ReadEvents[events.Notice](t, r.s.JS, events.StreamNotify, "upshift.notify.*."+id+".>", events.TypeNotice) {
					if (n.Kind == events.KindStepFailed || n.Kind == "failed") && strings.Contains(n.Summary, named) && strings.Contains(n.Summary, c.says) {
						told[n.Team+":"+n.Kind] = true
					}
				}
				return len(told) == 4
			})
		})
	}
}
