package precheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"

	"github.com/upshift/upshift/pkg/checks"
	"github.com/upshift/upshift/pkg/targets"
)

// maxBody is how much of an answer a check reads: enough for a health or
// version document.
const maxBody = 64 << 10

// dependencies are the checks of the third-party services the target
// relies on: each must answer its expected status, and its body must match.
func dependencies(t targets.Target) []Check {
	var checks []Check
	for _, d := range t.Precheck.Dependencies {
		want := "HTTP 2xx"
		if d.Status != 0 {
			want = "HTTP " + strconv.Itoa(d.Status)
		}
		if d.Body != "" {
			want += ", body ~ " + d.Body
		}
		if d.JSONField != "" {
			want += fmt.Sprintf(", %s = %s", d.JSONField, d.JSONValue)
		}
		checks = append(checks, Check{Name: "dependency " + d.Name, Threshold: want, Timeout: d.Timeout.Duration,
			Run: func(ctx context.Context) Result { return dependency(ctx, d) }})
	}
	return checks
}

func dependency(ctx context.Context, d targets.DependencyCheck) Result {
	status, body, err := get(ctx, d.URL, maxBody)
	if err != nil {
		return Result{Err: err}
	}
	r := Result{Value: "HTTP " + strconv.Itoa(status)}
	if ok := status >= 200 && status <= 299; (d.Status == 0 && !ok) || (d.Status != 0 && status != d.Status) {
		r.Err = fmt.Errorf("answered HTTP %d: %s", status, clipText(string(body), 120))
		return r
	}
	if d.Body != "" {
		re, err := regexp.Compile(d.Body)
		if err != nil {
			r.Err = fmt.Errorf("body pattern: %w", err)
			return r
		}
		if !re.Match(body) {
			r.Err = fmt.Errorf("body %q does not match %s", clipText(string(body), 120), d.Body)
			return r
		}
	}
	if d.JSONField != "" {
		v, err := checks.JSONField(body, d.JSONField)
		if err != nil {
			r.Err = err
			return r
		}
		r.Value += fmt.Sprintf(", %s = %s", d.JSONField, v)
		if v != d.JSONValue {
			r.Err = fmt.Errorf("%s is %q, want %q", d.JSONField, v, d.JSONValue)
		}
	}
	return r
}

// get reads at most limit bytes of url's answer.
func get(ctx context.Context, addr string, limit int64) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, addr, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("request: %w", withoutURL(err))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("GET: %w", withoutURL(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return resp.StatusCode, body, fmt.Errorf("read the answer: %w", err)
	}
	return resp.StatusCode, body, nil
}

// withoutURL drops the URL a client error repeats: the report names the
// check, and a URL may carry credentials.
func withoutURL(err error) error {
	var u *url.Error
	if errors.As(err, &u) && u.Err != nil {
		return u.Err
	}
	return err
}
