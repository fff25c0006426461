// Package checks runs a target's checks, each with its own time-out and a
// bounded number at once, and turns their results into report lines with
// the value measured and the threshold held against: the precheck and the
// verify service share it, so a check reads the same in both reports and in
// the notices that quote them.
package checks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/upshift/upshift/pkg/events"
)

// Parallel is how many checks of one target run at once by default: enough
// that slow network checks overlap, few enough not to load the host being
// checked.
const Parallel = 4

// DefaultTimeout bounds a check that sets no time-out.
const DefaultTimeout = 10 * time.Second

// Check is one check of the plan: it measures one thing and holds it
// against its threshold.
type Check struct {
	Name string
	// Threshold as the report shows it, e.g. ">= 100.0MiB".
	Threshold string
	// Timeout bounds the check; one that has not answered by then fails.
	Timeout time.Duration
	Run     func(ctx context.Context) Result
}

// Result is what a check found. A check that could not measure fails: Err
// says why, and it never passes for lack of an answer.
type Result struct {
	// Value measured, e.g. "12.1GiB (41%) free".
	Value string
	// Detail on a pass, for what Value does not say.
	Detail string
	// Err is why the check failed; nil: it passed.
	Err error
}

// Run runs checks, parallel at a time, and returns one line per check in
// the order of checks, whatever the order they finish in. Every check runs
// and is reported, whether or not another failed.
func Run(ctx context.Context, checks []Check, parallel int) []events.ReportLine {
	lines := make([]events.ReportLine, len(checks))
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				lines[i] = line(c, Result{Err: fmt.Errorf("not run: %w", ctx.Err())}, 0)
				return
			}
			start := time.Now()
			lines[i] = line(c, runOne(ctx, c), time.Since(start))
		})
	}
	wg.Wait()
	return lines
}

// runOne runs a check with its time-out. A check that ignores its context
// is left behind when the time-out passes, and fails.
func runOne(parent context.Context, c Check) Result {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	done := make(chan Result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- Result{Err: fmt.Errorf("check crashed: %v", p)}
			}
		}()
		done <- c.Run(ctx)
	}()
	select {
	case r := <-done:
		if parent.Err() != nil {
			// Whatever it found, it was stopped: the step is delivered again.
			return Result{Err: fmt.Errorf("interrupted: %w", parent.Err())}
		}
		if r.Err != nil && ctx.Err() == context.DeadlineExceeded {
			r.Err = fmt.Errorf("timed out after %s: %w", timeout, r.Err)
		}
		return r
	case <-ctx.Done():
		if parent.Err() != nil {
			return Result{Err: fmt.Errorf("interrupted: %w", parent.Err())}
		}
		return Result{Err: fmt.Errorf("timed out after %s", timeout)}
	}
}

func line(c Check, r Result, took time.Duration) events.ReportLine {
	l := events.ReportLine{Name: c.Name, OK: r.Err == nil, Status: events.CheckPass, Value: r.Value,
		Threshold: c.Threshold, Detail: r.Detail, Duration: took}
	if r.Err != nil {
		l.Status, l.Detail = events.CheckFail, r.Err.Error()
	}
	return l
}

// Failures says which lines failed and what they measured, in one line for
// the step's error: it is what the saga's reason and the teams' notices
// quote ("free disk: 1.2GiB free, need >= 100.0GiB; tcp db: refused").
func Failures(report []events.ReportLine) string {
	var out []string
	for _, l := range report {
		if l.LineStatus() != events.CheckFail {
			continue
		}
		switch {
		case l.Value != "" && l.Threshold != "":
			out = append(out, fmt.Sprintf("%s: %s, need %s", l.Name, l.Value, l.Threshold))
		case l.Detail != "":
			out = append(out, l.Name+": "+l.Detail)
		default:
			out = append(out, l.Name)
		}
	}
	if len(out) == 0 {
		return ""
	}
	n := "1 check"
	if len(out) > 1 {
		n = fmt.Sprintf("%d checks", len(out))
	}
	return n + " failed: " + strings.Join(out, "; ")
}

// JSONField reads a dotted path ("build.version") in a JSON document, as
// text: a string as it is, a number as written, a boolean or null by name.
func JSONField(body []byte, path string) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("the answer is not JSON: %w", err)
	}
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return "", fmt.Errorf("no field %s in the answer", path)
		}
		if v, ok = m[k]; !ok {
			return "", fmt.Errorf("no field %s in the answer", path)
		}
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case nil:
		return "null", nil
	case json.Number, bool:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("field %s is not a string, number or boolean", path)
}
