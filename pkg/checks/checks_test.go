package checks_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/checks"
	"github.com/upshift/upshift/pkg/events"
)

// Checks run at most parallel at a time, each with its own time-out, and
// report in their own order whatever order they finish in; a failing,
// stuck or crashing check fails its own line and no other.
func TestRunKeepsOrderAndEveryLine(t *testing.T) {
	t.Parallel()
	var running, most atomic.Int32
	sleep := func(d time.Duration, r checks.Result) func(context.Context) checks.Result {
		return func(ctx context.Context) checks.Result {
			n := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(d)
			return r
		}
	}
	var cs []checks.Check
	for i := range 10 {
		// The first finish last.
		cs = append(cs, checks.Check{Name: fmt.Sprint("c", i), Timeout: time.Second,
			Run: sleep(time.Duration(10-i)*10*time.Millisecond, checks.Result{Value: fmt.Sprint(i)})})
	}
	cs[3].Run = sleep(0, checks.Result{Value: "3", Err: errors.New("too low")})
	cs[3].Threshold = ">= 4"
	cs[5].Run = func(context.Context) checks.Result { time.Sleep(time.Hour); return checks.Result{} } // ignores its context
	cs[5].Timeout = 200 * time.Millisecond
	cs[7].Run = func(context.Context) checks.Result { panic("boom") }
	start := time.Now()
	report := checks.Run(context.Background(), cs, 4)
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
	if f := checks.Failures(report); f != "3 checks failed: c3: 3, need >= 4; c5: timed out after 200ms; c7: check crashed: boom" {
		t.Fatalf("failures %q", f)
	}
}

// A check that is stopped does not pass.
func TestRunInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	report := checks.Run(ctx, []checks.Check{{Name: "a", Run: func(ctx context.Context) checks.Result {
		<-ctx.Done()
		return checks.Result{}
	}}}, 1)
	if report[0].LineStatus() != events.CheckFail {
		t.Fatalf("line %+v", report[0])
	}
}
