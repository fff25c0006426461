package httpapi_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/httpapi"
)

const token = "s3cret-test-token"

const bearer = "Bearer " + token

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// newServer serves the API over b until the test ends.
func newServer(t *testing.T, b httpapi.Backend, cfg httpapi.Config, log *slog.Logger) *client {
	s := httptest.NewServer(httpapi.New(b, cfg, log))
	t.Cleanup(s.Close)
	return &client{t: t, url: s.URL}
}

// client calls the API.
type client struct {
	t   *testing.T
	url string
	// auth is the Authorization header of a call that gives none.
	auth string
}

// do sends a request and returns the status, the headers and the body,
// after checking that the answer is JSON.
func (c *client) do(method, path, auth string, body io.Reader) (int, http.Header, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if auth == "" {
		auth = c.auth
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		c.t.Fatalf("%s %s: Content-Type %q, body %s", method, path, ct, b)
	}
	if method != http.MethodHead && !json.Valid(b) {
		c.t.Fatalf("%s %s: not JSON: %s", method, path, b)
	}
	return resp.StatusCode, resp.Header, b
}

// get fetches path and decodes a 200 into out.
func (c *client) get(path string, out any) {
	c.t.Helper()
	code, _, b := c.do(http.MethodGet, path, "", nil)
	if code != http.StatusOK {
		c.t.Fatalf("GET %s: %d %s", path, code, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
}

// post sends a decision with the given Authorization header.
func (c *client) post(path, auth, body string) (int, http.Header, []byte) {
	c.t.Helper()
	return c.do(http.MethodPost, path, auth, strings.NewReader(body))
}

// wantError checks an error answer: its status, its body's code, and that
// its message contains each of parts.
func wantError(t *testing.T, what string, code int, b []byte, wantCode int, parts ...string) {
	t.Helper()
	var e httpapi.Error
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("%s: %v: %s", what, err, b)
	}
	if code != wantCode || e.Code != wantCode {
		t.Fatalf("%s: status %d, code %d, want %d: %s", what, code, e.Code, wantCode, b)
	}
	for _, p := range parts {
		if !strings.Contains(e.Error, p) {
			t.Fatalf("%s: error %q does not say %q", what, e.Error, p)
		}
	}
}

// decode decodes a JSON answer.
func decode(t *testing.T, b []byte, out any) {
	t.Helper()
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}

// accepted checks a 202 and returns the reply.
func accepted(t *testing.T, what string, code int, b []byte) api.ControlReply {
	t.Helper()
	var r api.ControlReply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v: %s", what, err, b)
	}
	if code != http.StatusAccepted || !r.Accepted || r.Control == "" {
		t.Fatalf("%s: %d %s", what, code, b)
	}
	return r
}

func kinds(tl []httpapi.TimelineItem) string {
	var out []string
	for _, it := range tl {
		out = append(out, it.Kind)
	}
	return strings.Join(out, " ")
}
