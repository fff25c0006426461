package verify_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/verify"
)

// verifyExecutor serves web-1 with the verify settings given, probed every
// 10ms: two good rounds pass, two bad ones fail.
func verifyExecutor(t *testing.T, v targets.Verify) *verify.Executor {
	t.Helper()
	tg := targets.Target{Root: t.TempDir(), Verify: v,
		Health: targets.Health{Interval: targets.Duration{Duration: 10 * time.Millisecond}, Successes: 2, Failures: 2}}
	reg, err := targets.New(map[string]targets.Target{"web-1": tg}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &verify.Executor{Targets: reg, Client: &http.Client{}}
}

func run(t *testing.T, e *verify.Executor) phase.Outcome {
	t.Helper()
	out, err := e.Execute(context.Background(), probeCmd("4.1", "4.2"), func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestHTTPChecks(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "db down", http.StatusInternalServerError) })
	mux.HandleFunc("/info", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"UP","build":{"version":"4.2"}}`)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond)
		fmt.Fprint(w, "ok")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name  string
		check targets.HTTPCheck
		value string // the line's value, a prefix
		error string // "" for a pass; else in the step's error
	}{
		{"2xx", targets.HTTPCheck{URL: "/ping"}, "HTTP 204", ""},
		{"expected status", targets.HTTPCheck{URL: "/ping", Status: 204}, "HTTP 204", ""},
		{"another status", targets.HTTPCheck{URL: "/ping", Status: 200}, "HTTP 204", "http c: answered 204 No Content, 2 probes in a row"},
		{"5xx", targets.HTTPCheck{URL: "/broken"}, "HTTP 500", "http c: answered 500 Internal Server Error"},
		{"body matches", targets.HTTPCheck{URL: "/info", Body: `"status":"UP"`}, "HTTP 200", ""},
		{"body does not match", targets.HTTPCheck{URL: "/info", Body: `"status":"DOWN"`}, "HTTP 200", `does not match "status":"DOWN"`},
		{"JSON field is the version", targets.HTTPCheck{URL: "/info", JSONField: "build.version", JSONValue: "${version}"}, "HTTP 200", ""},
		{"JSON field is another", targets.HTTPCheck{URL: "/info", JSONField: "status", JSONValue: "DOWN"}, "HTTP 200",
			`status is "UP", want "DOWN"`},
		{"JSON field missing", targets.HTTPCheck{URL: "/info", JSONField: "build.commit", JSONValue: "abc"}, "HTTP 200",
			"no field build.commit"},
		{"within the latency limit", targets.HTTPCheck{URL: "/slow", MaxLatency: targets.Duration{Duration: time.Second}}, "HTTP 200", ""},
		{"over the latency limit", targets.HTTPCheck{URL: "/slow", MaxLatency: targets.Duration{Duration: 50 * time.Millisecond}}, "HTTP 200",
			"limit 50ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := tc.check
			c.Name, c.URL = "c", srv.URL+c.URL
			out := run(t, verifyExecutor(t, targets.Verify{HTTP: []targets.HTTPCheck{c}}))
			if out.Failed != (tc.error != "") || !strings.Contains(out.Error, tc.error) {
				t.Fatalf("outcome failed=%v %s: %q, want %q; report %+v", out.Failed, out.Reason, out.Error, tc.error, out.Report)
			}
			if tc.error != "" && out.Reason != verify.ReasonUnhealthy {
				t.Errorf("reason %q", out.Reason)
			}
			l := line(out, "http c")
			if !strings.HasPrefix(l.Value, tc.value) || l.Threshold == "" || l.LineStatus() == events.CheckFail != out.Failed {
				t.Errorf("line %+v", l)
			}
		})
	}
}

func TestTCPChecks(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	out := run(t, verifyExecutor(t, targets.Verify{TCP: []targets.TCPCheck{{Name: "db", Address: l.Addr().String()}}}))
	if out.Failed || !strings.HasPrefix(line(out, "tcp db").Value, "connected in ") {
		t.Fatalf("open port: %+v", out)
	}
	closed := strings.TrimPrefix(unreachable(t), "http://scraper:s3cret@")
	out = run(t, verifyExecutor(t, targets.Verify{TCP: []targets.TCPCheck{{Address: closed}}}))
	if !out.Failed || out.Reason != verify.ReasonUnhealthy || !strings.Contains(out.Error, "tcp "+closed+": connect to "+closed) || !strings.Contains(out.Error, "connection refused") {
		t.Fatalf("closed port: %+v", out)
	}
}

func TestSmokeCommands(t *testing.T) {
	t.Parallel()
	app := newApp(t, "", "4.2", http.StatusOK)
	smoke := func(cmds ...targets.SmokeCommand) phase.Outcome {
		tg := targets.Target{Root: t.TempDir(), Health: app.health(2, 2), Verify: targets.Verify{Smoke: cmds},
			Env: map[string]targets.Secret{"APP_TOKEN": "tok-123"}}
		reg, err := targets.New(map[string]targets.Target{"web-1": tg}, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		out, err := (&verify.Executor{Targets: reg, Client: &http.Client{}}).Execute(context.Background(), probeCmd("4.1", "4.2"), func(string) {})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	sh := func(name, script string) targets.SmokeCommand {
		return targets.SmokeCommand{Name: name, Command: []string{"sh", "-c", script}, Env: map[string]targets.Secret{"SMOKE_USER": "tester"}}
	}

	out := smoke(sh("login", `echo "login as $SMOKE_USER on $UPSHIFT_VERSION with ${#APP_TOKEN}-char token in $(basename $PWD)"`))
	l := line(out, "smoke login")
	if out.Failed || l.Value != "exit 0" || !strings.HasPrefix(l.Detail, "login as tester on 4.2 with 7-char token in ") {
		t.Fatalf("passing smoke: %+v", out)
	}
	if len(out.Report) != 4 || out.Report[2].Name != "probes" {
		t.Fatalf("the smoke runs after the probes: %+v", out.Report)
	}

	out = smoke(sh("login", "echo step 1; echo 'FAIL: login returned 401' >&2; exit 3"), sh("checkout", "echo never"))
	if !out.Failed || out.Reason != verify.ReasonSmokeFailed ||
		out.Error != "1 check failed: smoke login: exit 3, need exit 0 within 1m0s" {
		t.Fatalf("failing smoke: %s: %q", out.Reason, out.Error)
	}
	if l := line(out, "smoke login"); !strings.Contains(l.Detail, "FAIL: login returned 401") || l.LineStatus() != events.CheckFail {
		t.Fatalf("the output is not in the report: %+v", l)
	}
	if l := line(out, "smoke checkout"); l.LineStatus() != events.CheckWarn || !strings.Contains(l.Detail, "not run") {
		t.Fatalf("ran after a failure: %+v", l)
	}

	slow := sh("slow", "sleep 5")
	slow.Timeout.Duration = 200 * time.Millisecond
	out = smoke(slow)
	if !out.Failed || !strings.Contains(out.Error, "smoke slow: timed out") {
		t.Fatalf("slow smoke: %q", out.Error)
	}

	// The output kept is bounded: its end.
	out = smoke(sh("loud", `i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done`))
	if l := line(out, "smoke loud"); len(l.Detail) > 1100 || !strings.HasSuffix(l.Detail, "line 1999") {
		t.Fatalf("output %d bytes, ends %q", len(l.Detail), l.Detail[max(0, len(l.Detail)-20):])
	}
}

// Nothing to check at all cannot verify.
func TestNothingConfiguredFails(t *testing.T) {
	t.Parallel()
	out := run(t, verifyExecutor(t, targets.Verify{}))
	if !out.Failed || out.Reason != verify.ReasonNotConfigured {
		t.Fatalf("outcome %+v", out)
	}
}
