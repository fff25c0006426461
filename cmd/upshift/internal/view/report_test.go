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
	s := saga.Saga{ID: "s1", State: saga.StateFailed, Steps: []saga.Step{
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
