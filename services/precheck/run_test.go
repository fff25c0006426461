package precheck_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/services/precheck"
)

// Checks run at most parallel at a time, each with its own time-out, and
// report in their own order whatever order they finish in; a failing,
// stuck or crashing check fails its own line and no other.
func TestRunKeepsOrderAndEveryLine(t *testing.T) {
	t.Parallel()
	var running, most atomic.Int32
	sleep := func(d time.Duration, r precheck.Result) func(context.Context) precheck.Result {
		return func(ctx context.Context) precheck.Result {
			n := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(d)
			return r
		}
	}
	var checks []precheck.Check
	for i := range 10 {
		// The first finish last.
		checks = append(checks, precheck.Check{Name: fmt.Sprint("c", i), Timeout: time.Second,
			Run: sleep(time.Duration(10-i)*10*time.Millisecond, precheck.Result{Value: fmt.Sprint(i)})})
	}
	checks[3].Run = sleep(0, precheck.Result{Value: "3", Err: errors.New("too low")})
	checks[3].Threshold = ">= 4"
	checks[5].Run = func(context.Context) precheck.Result { time.Sleep(time.Hour); return precheck.Result{} } // ignores its context
	checks[5].Timeout = 200 * time.Millisecond
	checks[7].Run = func(context.Context) precheck.Result { panic("boom") }
	start := time.Now()
	report := precheck.Run(context.Background(), checks, 4)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %s: the stuck check was waited for", took)
	}
	var got []string
	for _, l := range report {
		got = append(got, fmt.Sprintf("%s=%s", l.Name, l.LineStatus()))
	}
	want := "c0=pass c1=pass c2=pass c3=fail c4=pass c5=fail c6=pass c7=fail c8=pass c9=pass"
	if strings.Join(got, " ") != want {
		t.Fatalf("report %s", strings.Join(got, " "))
	}
	if m := most.Load(); m > 4 || m < 2 {
		t.Fatalf("%d checks at once, bound 4", m)
	}
	if report[5].Detail != "timed out after 200ms" || report[7].Detail != "check crashed: boom" || report[0].Value != "0" {
		t.Fatalf("lines %+v", report)
	}
	if f := precheck.Failures(report); f != "3 checks failed: c3: 3, need >= 4; c5: timed out after 200ms; c7: check crashed: boom" {
		t.Fatalf("failures %q", f)
	}
}

// A check that is stopped does not pass.
func TestRunInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	report := precheck.Run(ctx, []precheck.Check{{Name: "a", Run: func(ctx context.Context) precheck.Result {
		<-ctx.Done()
		return precheck.Result{}
	}}}, 1)
	if report[0].LineStatus() != events.CheckFail {
		t.Fatalf("line %+v", report[0])
	}
}
