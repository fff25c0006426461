package verify_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/verify"
)

// app is a target's HTTP side: the health URL answers the statuses in turn
// (the last one repeats), the version URL answers a fixed body.
type app struct {
	statuses []int
	ctype    string
	version  string
	probes   atomic.Int32
	srv      *httptest.Server
}

func newApp(t *testing.T, ctype, version string, statuses ...int) *app {
	a := &app{statuses: statuses, ctype: ctype, version: version}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		n := int(a.probes.Add(1)) - 1
		w.WriteHeader(a.statuses[min(n, len(a.statuses)-1)])
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		if a.ctype != "" {
			w.Header().Set("Content-Type", a.ctype)
		}
		fmt.Fprint(w, a.version)
	})
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

func (a *app) health(successes, failures int) targets.Health {
	return targets.Health{URL: a.srv.URL + "/healthz", VersionURL: a.srv.URL + "/version",
		Interval: targets.Duration{Duration: 10 * time.Millisecond}, Successes: successes, Failures: failures}
}

func executor(t *testing.T, h targets.Health) *verify.Executor {
	reg, err := targets.New(map[string]targets.Target{"web-1": {Root: t.TempDir(), Health: h}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &verify.Executor{Targets: reg, Client: &http.Client{}}
}

func probeCmd(from, to string) events.Command {
	return events.Command{Step: "s.verify.probe.web-1.1", Saga: "s", Phase: events.Verify, Action: events.ActionProbe,
		Target: "web-1", Attempt: 1, Deadline: time.Now().Add(time.Minute),
		Upgrade: events.Upgrade{Kind: "Upgrade", Software: "app", From: from, To: to}}
}

// progressLog records progress messages.
type progressLog struct {
	mu   sync.Mutex
	msgs []string
}

func (p *progressLog) report(msg string) { p.mu.Lock(); p.msgs = append(p.msgs, msg); p.mu.Unlock() }

func line(out phase.Outcome, name string) events.ReportLine {
	for _, l := range out.Report {
		if l.Name == name {
			return l
		}
	}
	return events.ReportLine{Name: "(missing " + name + ")"}
}

func TestProbes(t *testing.T) {
	const ok, down = http.StatusOK, http.StatusServiceUnavailable
	for _, tc := range []struct {
		name                 string
		statuses             []int
		ctype, version       string
		from, to             string
		successes, failures  int
		reason               string // "" for success
		probes               string
		seen, health, detail string // substrings of the report
		counts               string
	}{
		{name: "healthy and right version", statuses: []int{ok}, version: "4.2", from: "4.1", to: "4.2",
			successes: 3, failures: 3, probes: "3", seen: "4.2", detail: `version "4.2"`, counts: "3/3 probes healthy"},
		{name: "health 503", statuses: []int{down}, version: "4.2", to: "4.2", successes: 3, failures: 4,
			reason: verify.ReasonUnhealthy, probes: "4", seen: "4.2", health: "503 Service Unavailable", counts: "4/4 probes failed"},
		{name: "wrong version", statuses: []int{ok}, version: "4.1", from: "4.1", to: "4.2", successes: 3, failures: 2,
			reason: verify.ReasonWrongVersion, probes: "2", seen: "4.1", detail: `version "4.1", want "4.2"`, counts: "2/2 probes failed"},
		{name: "plain text with a new line", statuses: []int{ok}, ctype: "text/plain", version: "4.2\n", to: "4.2",
			successes: 2, failures: 2, probes: "2", seen: "4.2"},
		{name: "JSON by content type", statuses: []int{ok}, ctype: "application/json; charset=utf-8",
			version: `{"version": "4.2", "commit": "abc"}`, to: "4.2", successes: 2, failures: 2, probes: "2", seen: "4.2"},
		{name: "JSON by shape", statuses: []int{ok}, version: ` {"build":{"n":1},"version":"4.2"}`, to: "4.2",
			successes: 2, failures: 2, probes: "2", seen: "4.2"},
		{name: "JSON of another version", statuses: []int{ok}, version: `{"version":"4.1"}`, to: "4.2",
			successes: 2, failures: 2, reason: verify.ReasonWrongVersion, probes: "2", seen: "4.1"},
		{name: "JSON without a version", statuses: []int{ok}, ctype: "application/json", version: `{"status":"up"}`, to: "4.2",
			successes: 2, failures: 2, reason: verify.ReasonWrongVersion, probes: "2", detail: `no "version" field`},
		{name: "flapping then steady", statuses: []int{down, ok, ok, ok}, version: "4.2", to: "4.2",
			successes: 3, failures: 2, probes: "4", seen: "4.2", counts: "3/3 probes healthy, 4 in all"},
		{name: "only consecutive probes count", statuses: []int{down, ok, ok, down, ok, ok, ok}, version: "4.2", to: "4.2",
			successes: 3, failures: 2, probes: "7", seen: "4.2", counts: "3/3 probes healthy, 7 in all"},
		{name: "healthy after a slow start", statuses: []int{down, down, down, down, ok}, version: "4.2", to: "4.2",
			successes: 3, failures: 5, probes: "7", seen: "4.2"},
		{name: "maintenance expects from", statuses: []int{ok}, version: "4.1", from: "4.1",
			successes: 2, failures: 2, probes: "2", seen: "4.1"},
		{name: "maintenance on another version", statuses: []int{ok}, version: "4.2", from: "4.1",
			successes: 2, failures: 2, reason: verify.ReasonWrongVersion, seen: "4.2", detail: `want "4.1"`},
		{name: "no version named: version not checked", statuses: []int{ok}, version: "anything",
			successes: 2, failures: 2, probes: "2", seen: "", detail: "not checked: the request names no version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newApp(t, tc.ctype, tc.version, tc.statuses...)
			var p progressLog
			out, err := executor(t, a.health(tc.successes, tc.failures)).Execute(context.Background(), probeCmd(tc.from, tc.to), p.report)
			if err != nil {
				t.Fatal(err)
			}
			if out.Failed != (tc.reason != "") || out.Reason != tc.reason {
				t.Fatalf("outcome failed=%v reason=%q error=%q, want reason %q; report %+v", out.Failed, out.Reason, out.Error, tc.reason, out.Report)
			}
			if tc.probes != "" && (out.Output["probes"] != tc.probes || fmt.Sprint(a.probes.Load()) != tc.probes) {
				t.Errorf("%s probes reported, %d made, want %s", out.Output["probes"], a.probes.Load(), tc.probes)
			}
			if out.Output["version"] != tc.seen {
				t.Errorf("version seen %q, want %q", out.Output["version"], tc.seen)
			}
			for name, want := range map[string]string{"health": tc.health, "version": tc.detail, "probes": tc.counts} {
				if l := line(out, name); !strings.Contains(l.Detail, want) {
					t.Errorf("report line %s: %q lacks %q", name, l.Detail, want)
				}
			}
			if l := line(out, "probes"); l.OK == out.Failed {
				t.Errorf("probes line ok=%v for failed=%v", l.OK, out.Failed)
			}
		})
	}
}

func TestFailureSaysWhatWasWrong(t *testing.T) {
	a := newApp(t, "", "4.2", http.StatusServiceUnavailable)
	out, _ := executor(t, a.health(3, 2)).Execute(context.Background(), probeCmd("4.1", "4.2"), func(string) {})
	if out.Error != "health 503 Service Unavailable, 2 probes in a row" {
		t.Fatalf("error %q", out.Error)
	}
	if l := line(out, "health"); l.OK || l.Detail != "GET "+a.srv.URL+"/healthz: 503 Service Unavailable" {
		t.Fatalf("health line %+v", l)
	}
}

func TestProgressIsReportedEveryFewProbes(t *testing.T) {
	a := newApp(t, "", "4.2", http.StatusServiceUnavailable, http.StatusServiceUnavailable, http.StatusServiceUnavailable,
		http.StatusServiceUnavailable, http.StatusOK)
	var p progressLog
	out, err := executor(t, a.health(3, 5)).Execute(context.Background(), probeCmd("", "4.2"), p.report)
	if err != nil || out.Failed {
		t.Fatalf("outcome %+v, err %v", out, err)
	}
	if len(p.msgs) == 0 || p.msgs[0] != "probe 3: health 503 Service Unavailable (3/5 failed in a row)" {
		t.Fatalf("progress %q", p.msgs)
	}
}

func TestNotConfiguredFails(t *testing.T) {
	out, err := executor(t, targets.Health{}).Execute(context.Background(), probeCmd("4.1", "4.2"), func(string) {})
	if err != nil || !out.Failed || out.Reason != verify.ReasonNotConfigured || !strings.Contains(out.Error, "no health URL") {
		t.Fatalf("outcome %+v, err %v", out, err)
	}
}

func TestUnknownTargetFails(t *testing.T) {
	c := probeCmd("4.1", "4.2")
	c.Target = "web-9"
	out, _ := executor(t, targets.Health{URL: "http://127.0.0.1:1/"}).Execute(context.Background(), c, func(string) {})
	if !out.Failed || out.Reason != events.ReasonUnknown {
		t.Fatalf("outcome %+v", out)
	}
}

func TestDeadlineFailsBeforeTheDeadline(t *testing.T) {
	a := newApp(t, "", "4.2", http.StatusServiceUnavailable)
	c := probeCmd("4.1", "4.2")
	c.Deadline = time.Now().Add(1500 * time.Millisecond)
	out, err := executor(t, a.health(3, 1000)).Execute(context.Background(), c, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	if !time.Now().Before(c.Deadline) {
		t.Fatalf("returned at the deadline or after it, too late to be reported")
	}
	// The last probe says 503, or, on a loaded machine, that it got no
	// answer in time: either way no verdict before the deadline.
	if !out.Failed || out.Reason != verify.ReasonDeadline || !strings.Contains(out.Error, "before the step's deadline without a verdict") ||
		!strings.Contains(out.Error, "health 503") && !strings.Contains(out.Error, "no answer within") {
		t.Fatalf("outcome %+v", out)
	}
	if out.Output["probes"] == "" || out.Output["probes"] == "0" {
		t.Fatalf("no probe counted: %v", out.Output)
	}
}

func TestSlowAnswerIsABadProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	h := targets.Health{URL: srv.URL, Interval: targets.Duration{Duration: 10 * time.Millisecond}, Successes: 1, Failures: 2}
	out, _ := executor(t, h).Execute(context.Background(), probeCmd("", "4.2"), func(string) {})
	if out.Reason != verify.ReasonUnhealthy || !strings.Contains(out.Error, "no answer within 200ms") {
		t.Fatalf("outcome %+v", out)
	}
}

func TestCancelledContextIsAnErrorNotAnOutcome(t *testing.T) {
	a := newApp(t, "", "4.2", http.StatusServiceUnavailable)
	ctx, cancel := context.WithCancel(context.Background())
	// Cancel once a probe has been made, mid-polling.
	out, err := executor(t, a.health(3, 1000)).Execute(ctx, probeCmd("", "4.2"), func(string) { cancel() })
	if !errors.Is(err, context.Canceled) || out.Failed {
		t.Fatalf("outcome %+v, err %v", out, err)
	}
}
