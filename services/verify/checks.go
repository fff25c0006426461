package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/upshift/upshift/pkg/checks"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/hooks"
	"github.com/upshift/upshift/pkg/targets"
)

// roundChecks are the HTTP and TCP checks of the target's verify settings,
// run in every probe round beside the health and version checks.
func roundChecks(c *http.Client, t targets.Target, expect string) []checks.Check {
	var out []checks.Check
	for _, h := range t.Verify.HTTP {
		want := "HTTP 2xx"
		if h.Status != 0 {
			want = "HTTP " + strconv.Itoa(h.Status)
		}
		if h.Body != "" {
			want += ", body ~ " + h.Body
		}
		value := strings.ReplaceAll(h.JSONValue, targets.VersionPlaceholder, expect)
		if h.JSONField != "" {
			want += fmt.Sprintf(", %s = %s", h.JSONField, value)
		}
		if h.MaxLatency.Duration > 0 {
			want += ", within " + h.MaxLatency.String()
		}
		out = append(out, checks.Check{Name: "http " + h.Name, Threshold: want, Timeout: h.Timeout.Duration,
			Run: func(ctx context.Context) checks.Result { return httpCheck(ctx, c, h, value) }})
	}
	for _, tc := range t.Verify.TCP {
		out = append(out, checks.Check{Name: "tcp " + tc.Label(), Threshold: "connects within " + tc.Timeout.String(),
			Timeout: tc.Timeout.Duration, Run: func(ctx context.Context) checks.Result { return tcpCheck(ctx, tc.Address) }})
	}
	return out
}

func httpCheck(ctx context.Context, c *http.Client, h targets.HTTPCheck, value string) checks.Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
	if err != nil {
		return checks.Result{Err: errors.New("bad URL")}
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return checks.Result{Err: fmt.Errorf("GET: %w", cause(ctx, err, h.Timeout.Duration))}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	took := time.Since(start)
	if err != nil {
		return checks.Result{Err: fmt.Errorf("read the answer: %w", cause(ctx, err, h.Timeout.Duration))}
	}
	r := checks.Result{Value: fmt.Sprintf("HTTP %d in %s", resp.StatusCode, took.Round(time.Millisecond))}
	if ok := resp.StatusCode >= 200 && resp.StatusCode <= 299; (h.Status == 0 && !ok) || (h.Status != 0 && resp.StatusCode != h.Status) {
		r.Err = fmt.Errorf("answered %s", statusText(resp.StatusCode))
		return r
	}
	if h.MaxLatency.Duration > 0 && took > h.MaxLatency.Duration {
		r.Err = fmt.Errorf("answered in %s, limit %s", took.Round(time.Millisecond), h.MaxLatency)
		return r
	}
	if h.Body != "" {
		re, err := regexp.Compile(h.Body)
		if err != nil {
			r.Err = fmt.Errorf("body pattern: %w", err)
			return r
		}
		if !re.Match(body) {
			r.Err = fmt.Errorf("body %s does not match %s", quote(string(body)), h.Body)
			return r
		}
	}
	if h.JSONField != "" {
		v, err := checks.JSONField(body, h.JSONField)
		if err != nil {
			r.Err = err
			return r
		}
		r.Value += fmt.Sprintf(", %s = %s", h.JSONField, v)
		if v != value {
			r.Err = fmt.Errorf("%s is %s, want %s", h.JSONField, quote(v), quote(value))
		}
	}
	return r
}

func tcpCheck(ctx context.Context, addr string) checks.Result {
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			err = op.Err
		}
		return checks.Result{Err: fmt.Errorf("connect to %s: %w", addr, err)}
	}
	conn.Close()
	return checks.Result{Value: "connected in " + time.Since(start).Round(time.Microsecond).String(), Detail: addr}
}

// smokeOutput is how much of a smoke command's output its report line
// keeps: the end of it, where a test runner says what failed.
const smokeOutput = 1 << 10

// smoke runs the target's smoke commands in order, each like a hook, and
// stops at the first that fails: the next would test a broken target. A
// command that has not ended by stopAt is stopped, and fails.
func smoke(ctx context.Context, t targets.Target, expect string, stopAt time.Time, progress func(string)) []events.ReportLine {
	var lines []events.ReportLine
	for i, s := range t.Verify.Smoke {
		timeout := s.Timeout.Duration
		if !stopAt.IsZero() {
			timeout = max(min(timeout, time.Until(stopAt)), time.Millisecond)
		}
		progress("smoke " + s.Name)
		extra := map[string]string{"UPSHIFT_VERSION": expect}
		for k, v := range s.Env {
			extra[k] = string(v)
		}
		res, err := hooks.Run(ctx, s.Command, t.Root, t.HookEnv(extra), timeout)
		l := events.ReportLine{Name: "smoke " + s.Name, OK: err == nil, Status: events.CheckPass,
			Value: "exit " + strconv.Itoa(res.ExitCode), Threshold: "exit 0 within " + s.Timeout.String(),
			Detail: tail(res.Output, smokeOutput), Duration: res.Duration}
		if err != nil {
			l.Status = events.CheckFail
			if errors.Is(err, hooks.ErrTimeout) {
				l.Value = "timed out"
			}
			l.Detail = strings.TrimSpace(err.Error() + "\n" + l.Detail)
		}
		lines = append(lines, l)
		if err != nil {
			for _, rest := range t.Verify.Smoke[i+1:] {
				lines = append(lines, events.ReportLine{Name: "smoke " + rest.Name, OK: true, Status: events.CheckWarn,
					Detail: "not run: smoke " + s.Name + " failed"})
			}
			break
		}
	}
	return lines
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	cut := len(s) - n
	for cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut++
	}
	return "…" + s[cut:]
}
