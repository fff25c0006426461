package view_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/cmd/upshift/internal/view"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
)

var checks = []events.ReportLine{
	{Name: "free disk", OK: true, Status: events.CheckPass, Value: "12.1GiB (41%) free", Threshold: ">= 100.0MiB", Detail: "at /srv/web", Duration: 1500 * time.Microsecond},
	{Name: "tcp db", OK: false, Status: events.CheckFail, Threshold: "connects within 2s", Detail: "connect to db-1:5432: connection refused", Duration: 3 * time.Millisecond},
	{Name: "artifact digest", OK: true, Detail: "staged and verified sha256:ab"}, // a line from before statuses
}

// `upshift status` shows each step's report as a table of its own, with a
// column for each part of a line, in the order of the report.
func TestStatusShowsAReportTablePerTarget(t *testing.T) {
	t.Parallel()
	s := saga.Saga{ID: "s1", State: saga.StateFailed, Steps: []*saga.Step{
		{Phase: events.Precheck, Action: events.ActionCheck, Target: "web-1", Attempt: 1, Status: saga.StepFailed, Error: "1 check failed: tcp db: connection refused", Report: checks},
		{Phase: events.Precheck, Action: events.ActionCheck, Target: "web-2", Attempt: 1, Status: saga.StepSucceeded, Report: checks[:1]},
	}}
	var b bytes.Buffer
	view.Status(&b, s)
	out := b.String()
	for _, want := range []string{
		`(?m)^precheck check on web-1 \(attempt 1\): failed\n  CHECK +STATUS +VALUE +THRESHOLD +TOOK +DETAIL\n`,
		`(?m)^  free disk +pass +12\.1GiB \(41%\) free +>= 100\.0MiB +2ms +at /srv/web\n  tcp db +fail +connects within 2s +3ms +connect to db-1:5432: connection refused\n  artifact digest +pass +staged and verified sha256:ab\n`,
		`(?m)^precheck check on web-2 \(attempt 1\): succeeded\n  CHECK.*\n  free disk +pass`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("status lacks %s:\n%s", want, out)
		}
	}
}

// As a saga runs, a finished precheck's checks are printed under its line.
func TestWatchPrintsThePrecheckChecks(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	p := view.NewPrinter(&b)
	for _, r := range []events.StepResult{
		{Saga: "s1", Phase: events.Precheck, Action: events.ActionCheck, Target: "web-1", Status: events.StatusFailed, Reason: "check_failed", Error: "1 check failed", Report: checks},
		{Saga: "s1", Phase: events.Deploy, Action: events.ActionApply, Target: "web-1", Status: events.StatusSucceeded, Report: checks},
	} {
		env, err := events.New("id-"+string(r.Phase), events.TypeStep, "test", "s1", 0, time.Now(), r)
		if err != nil {
			t.Fatal(err)
		}
		data, err := events.Encode(env)
		if err != nil {
			t.Fatal(err)
		}
		p.Print(data)
	}
	got := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(got) != 5 {
		t.Fatalf("%d lines:\n%s", len(got), b.String())
	}
	for i, want := range []string{
		`precheck check +web-1 +FAILED: check_failed: 1 check failed$`,
		`^ {43}ok   free disk +12\.1GiB \(41%\) free \(>= 100\.0MiB\)$`,
		`^ {43}FAIL tcp db +\(connects within 2s\): connect to db-1:5432: connection refused$`,
		`^ {43}ok   artifact digest *$`,
		`deploy +apply +web-1 +succeeded$`,
	} {
		if !regexp.MustCompile(want).MatchString(got[i]) {
			t.Errorf("line %d %q does not match %s", i, got[i], want)
		}
	}
}

// A watching saga shows its watch period and the time left; its watch
// line says until when.
func TestWatchingShowsTheTimeLeft(t *testing.T) {
	t.Parallel()
	entered := time.Now().Add(-4 * time.Minute)
	s := saga.Saga{ID: "s1", State: saga.StateWatching, EnteredAt: entered, Deadline: entered.Add(10*time.Minute + saga.WatchGrace)}
	s.Request.Spec.Verify.Watch.Duration = 10 * time.Minute
	var b bytes.Buffer
	view.Status(&b, s)
	if !regexp.MustCompile(`(?m)^watch +10m0s, until \S+ \S+ \((5m5[0-9]s|6m0s) left\)$`).MatchString(b.String()) {
		t.Fatalf("status:\n%s", b.String())
	}
	line := view.SagaLine(events.SagaEvent{Kind: "watching", State: "watching", Reason: "every target watched for 10m0s, until 2026-12-01T12:10:00Z"})
	if line != "== watching: for 10m0s, until 2026-12-01T12:10:00Z" {
		t.Fatalf("line %q", line)
	}
}

// A finished verification's checks and measurements are printed under its
// line too.
func TestWatchPrintsTheVerifyChecks(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	p := view.NewPrinter(&b)
	r := events.StepResult{Saga: "s1", Phase: events.Verify, Action: events.ActionWatch, Target: "web-1", Status: events.StatusFailed,
		Reason: "analysis_failed", Error: "1 check failed: analysis error-rate: 0.2 (1 of 3 measurements failed, limit 0), need < 0.05",
		Report: []events.ReportLine{{Name: "analysis error-rate", Status: events.CheckFail, Value: "0.2 (1 of 3 measurements failed, limit 0)", Threshold: "< 0.05"}}}
	env, err := events.New("id", events.TypeStep, "test", "s1", 0, time.Now(), r)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := events.Encode(env)
	p.Print(data)
	if !regexp.MustCompile(`(?m)^ +FAIL analysis error-rate +0\.2 \(1 of 3 measurements failed, limit 0\) \(< 0\.05\)$`).MatchString(b.String()) {
		t.Fatalf("watch:\n%s", b.String())
	}
}
