package precheck_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/targets"
)

func TestDependencies(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthy":
			fmt.Fprint(w, `{"status": "UP", "checks": {"db": "ok"}}`)
		case "/failing":
			http.Error(w, "upstream down", http.StatusServiceUnavailable)
		case "/accepted":
			w.WriteHeader(http.StatusAccepted)
		case "/slow":
			time.Sleep(2 * time.Second)
		}
	}))
	t.Cleanup(srv.Close)
	for _, c := range []struct {
		name   string
		d      targets.DependencyCheck
		status events.CheckStatus
		says   string
	}{
		{"healthy", targets.DependencyCheck{URL: srv.URL + "/healthy"}, events.CheckPass, "HTTP 200"},
		{"healthy, body and field", targets.DependencyCheck{URL: srv.URL + "/healthy", Body: `"db":\s*"ok"`, JSONField: "status", JSONValue: "UP"}, events.CheckPass, "status = UP"},
		{"failing", targets.DependencyCheck{URL: srv.URL + "/failing"}, events.CheckFail, "answered HTTP 503: upstream down"},
		{"body does not match", targets.DependencyCheck{URL: srv.URL + "/healthy", Body: `"db":\s*"down"`}, events.CheckFail, "does not match"},
		{"field differs", targets.DependencyCheck{URL: srv.URL + "/healthy", JSONField: "checks.db", JSONValue: "degraded"}, events.CheckFail, `checks.db is "ok", want "degraded"`},
		{"another status expected", targets.DependencyCheck{URL: srv.URL + "/healthy", Status: 202}, events.CheckFail, "answered HTTP 200"},
		{"that status expected", targets.DependencyCheck{URL: srv.URL + "/accepted", Status: 202}, events.CheckPass, "HTTP 202"},
		{"slow", targets.DependencyCheck{URL: srv.URL + "/slow", Timeout: targets.Duration{Duration: 300 * time.Millisecond}}, events.CheckFail, "timed out after 300ms"},
		{"down", targets.DependencyCheck{URL: "http://" + closedPort(t) + "/health"}, events.CheckFail, "connection refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.d.Name = "payments"
			expect(t, checked(t, targets.Precheck{Dependencies: []targets.DependencyCheck{c.d}}), "dependency payments", c.status, c.says)
		})
	}
}
