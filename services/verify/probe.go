package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/upshift/upshift/pkg/checks"
	"github.com/upshift/upshift/pkg/events"
)

// maxBody bounds what is read of an answer: a version is a short string.
const maxBody = 64 << 10

// check is the result of one check in one probe.
type check struct {
	ok     bool
	skip   bool   // not configured: no line in the report
	detail string // for the report: what was asked and what came back
	short  string // for an error message, when not ok
	seen   string // the version read, if any
	value  string // what came back, for the report's value column
}

// probe is one round of checks: the health URL, the version URL and the
// target's HTTP and TCP checks.
type probe struct {
	health, version check
	extra           []events.ReportLine
}

func (p probe) ok() bool { return p.health.ok && p.version.ok && p.badExtra() < 0 }

func (p probe) badExtra() int {
	return slices.IndexFunc(p.extra, func(l events.ReportLine) bool { return l.LineStatus() == events.CheckFail })
}

// reason is why a bad probe is bad; an unhealthy target makes its version
// beside the point.
func (p probe) reason() string {
	if !p.health.ok || p.badExtra() >= 0 {
		return ReasonUnhealthy
	}
	return ReasonWrongVersion
}

func (p probe) problem() string {
	if !p.health.ok {
		return p.health.short
	}
	if i := p.badExtra(); i >= 0 {
		l := p.extra[i]
		return l.Name + ": " + l.Detail
	}
	return p.version.short
}

// probe runs the health check, then the version check, then the target's
// other checks, concurrently. All run, so the report shows all.
func (p *prober) probe(ctx context.Context, stopAt time.Time) probe {
	pr := probe{health: p.checkHealth(ctx, stopAt), version: p.checkVersion(ctx, stopAt)}
	if len(p.extra) > 0 {
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if !stopAt.IsZero() {
			cctx, cancel = context.WithDeadline(ctx, stopAt)
		}
		pr.extra = checks.Run(cctx, p.extra, checks.Parallel)
		cancel()
	}
	return pr
}

func (p *prober) checkHealth(ctx context.Context, stopAt time.Time) check {
	if p.health.URL == "" {
		return check{ok: true, skip: true}
	}
	where := "GET " + display(p.health.URL)
	status, _, _, err := p.get(ctx, stopAt, p.health.URL)
	switch {
	case err != nil:
		return check{detail: where + ": " + err.Error(), short: "health check: " + err.Error()}
	case status < 200 || status > 299:
		return check{detail: where + ": " + statusText(status), short: "health " + statusText(status), value: statusText(status)}
	}
	return check{ok: true, detail: where + ": " + statusText(status), value: statusText(status)}
}

func (p *prober) checkVersion(ctx context.Context, stopAt time.Time) check {
	switch {
	case p.health.VersionURL == "" && p.health.URL == "":
		return check{ok: true, skip: true}
	case p.health.VersionURL == "":
		return check{ok: true, detail: "not checked: no version URL configured"}
	case p.expect == "":
		return check{ok: true, detail: "not checked: the request names no version"}
	}
	where := "GET " + display(p.health.VersionURL)
	status, ctype, body, err := p.get(ctx, stopAt, p.health.VersionURL)
	if err == nil && (status < 200 || status > 299) {
		err = errors.New("answered " + statusText(status))
	}
	var seen string
	if err == nil {
		seen, err = parseVersion(ctype, body)
	}
	if err != nil {
		return check{detail: where + ": " + err.Error(), short: "version check: " + err.Error()}
	}
	if seen != p.expect {
		return check{seen: seen, value: quote(seen), detail: fmt.Sprintf("%s: version %s, want %s", where, quote(seen), quote(p.expect)),
			short: fmt.Sprintf("version is %s, want %s", quote(seen), quote(p.expect))}
	}
	return check{ok: true, seen: seen, value: quote(seen), detail: fmt.Sprintf("%s: version %s", where, quote(seen))}
}

// get asks url within the per-request time-out, and never past stopAt.
func (p *prober) get(ctx context.Context, stopAt time.Time, u string) (status int, ctype string, body []byte, err error) {
	deadline := time.Now().Add(p.timeout)
	if !stopAt.IsZero() && stopAt.Before(deadline) {
		deadline = stopAt
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, "", nil, fmt.Errorf("bad URL: %w", err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, "", nil, cause(ctx, err, p.timeout)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, "", nil, fmt.Errorf("read answer: %w", cause(ctx, err, p.timeout))
	}
	// Drain what is left so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	return resp.StatusCode, resp.Header.Get("Content-Type"), body, nil
}

// cause strips the URL from a client error (it may hold a token) and names
// a time-out plainly.
func cause(ctx context.Context, err error, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// parseVersion reads a version from a JSON object's "version" field, or
// from a plain-text body.
func parseVersion(ctype string, body []byte) (string, error) {
	body = bytes.TrimSpace(body)
	mt, _, _ := mime.ParseMediaType(ctype)
	if mt == "application/json" || bytes.HasPrefix(body, []byte("{")) {
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(body, &doc); err != nil {
			return "", fmt.Errorf("answer is not a JSON object: %w", err)
		}
		raw, ok := doc["version"]
		if !ok {
			return "", errors.New(`JSON answer has no "version" field`)
		}
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			return s, nil
		}
		// A number, say: take it as written.
		return string(bytes.TrimSpace(raw)), nil
	}
	if len(body) == 0 {
		return "", errors.New("empty answer")
	}
	return string(body), nil
}

// display shows a URL without credentials, query or fragment, which may
// carry secrets that must stay out of reports.
func display(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery, u.Fragment = "", ""
	u.User = nil
	return u.String()
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

// quote shows a version, cut short if a server answered something long.
func quote(s string) string {
	const limit = 64
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return strconv.Quote(s)
}
