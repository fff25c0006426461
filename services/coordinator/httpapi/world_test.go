package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natsembed"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/httpapi"
	"github.com/upshift/upshift/services/coordinator/sagastore/kvstore"
)

const token = "s3cret-test-token"

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// fast consumer settings: a lost message comes back within a second or two.
var fast = consumer.Config{AckWait: 1500 * time.Millisecond, MaxDeliver: 10,
	Backoff: []time.Duration{20 * time.Millisecond, 100 * time.Millisecond}, Grace: 3 * time.Second}

// world is a NATS server, a KV store, the four phase services with
// executors that succeed (but for verify on target "stuck", which waits
// until the test ends), and one coordinator that holds production sagas
// for approval.
type world struct {
	t   *testing.T
	srv *natsembed.Server
	js  jetstream.JetStream
	c   *coordinator.Coordinator
}

func newWorld(t *testing.T) *world {
	srv, js := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv)
	ctx := context.Background()
	store, err := kvstore.Open(ctx, js, streams.Config{})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, srv: srv, js: js}
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	exec := phase.ExecutorFunc(func(ctx context.Context, c events.Command, _ phase.Progress) (phase.Outcome, error) {
		if c.Phase == events.Verify && c.Target == "stuck" {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return phase.Outcome{}, errors.New("released")
		}
		return phase.Success(map[string]string{"by": "test"}), nil
	})
	actions := map[events.Phase][]events.Action{
		events.Precheck: {events.Check}, events.Backup: {events.Archive, events.Restore},
		events.Deploy: {events.Apply, events.Rollback}, events.Verify: {events.Probe},
	}
	for _, p := range events.Phases {
		svc := phase.New(js, phase.Config{Service: p, Targets: []string{"a", "stuck"}, Actions: actions[p], Consumer: fast},
			exec, quiet, prometheus.NewRegistry())
		w.run(string(p), svc.Run)
		natstest.Eventually(t, natstest.Patience, string(p)+" ready", svc.Ready)
	}
	w.c = coordinator.New(nc, js, coordinator.Config{Store: store, Consumer: fast, RelayInterval: 500 * time.Millisecond,
		GaugeInterval: 200 * time.Millisecond,
		Policy:        coordinator.Policy{ApprovalEnvironments: []string{"production"}, ApprovalTimeout: time.Hour}},
		quiet, prometheus.NewRegistry())
	w.run("coordinator", w.c.Run)
	natstest.Eventually(t, natstest.Patience, "coordinator ready", w.c.Ready)
	return w
}

// run runs fn until the test ends.
func (w *world) run(name string, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			w.t.Errorf("%s: %v", name, err)
		}
	}()
	w.t.Cleanup(func() { cancel(); <-done })
}

// serve serves the API over the coordinator.
func (w *world) serve(cfg httpapi.Config, log *slog.Logger) *client {
	return newServer(w.t, w.c, cfg, log)
}

func newServer(t *testing.T, b httpapi.Backend, cfg httpapi.Config, log *slog.Logger) *client {
	s := httptest.NewServer(httpapi.New(b, cfg, log))
	t.Cleanup(s.Close)
	return &client{t: t, url: s.URL}
}

func request(team, env, software, digestChar string, targets ...string) spec.Request {
	return spec.Request{
		APIVersion: spec.APIVersion, Kind: spec.KindUpgrade,
		Metadata: spec.Metadata{Name: "http api test", Team: team, Environment: env},
		Spec: spec.Spec{Software: software, From: "1.0", To: "1.1", Targets: targets,
			Artifact: spec.Artifact{URL: "file:///app.tgz", Digest: digest(digestChar)},
			Timeouts: spec.Timeouts{Precheck: sec(30), Backup: sec(30), Deploy: sec(30), Verify: sec(60), Rollback: sec(30)}},
	}
}

func digest(c string) string { return "sha256:" + strings.Repeat(c, 64) }

func sec(n int) spec.Duration { return spec.Duration{Duration: time.Duration(n) * time.Second} }

// submit publishes a request as `upshift submit` does and returns its id.
func (w *world) submit(r spec.Request) string {
	id := uuid.NewString()
	env, err := events.New(id, events.TypeRequest, "test", "", 0, time.Now(), r)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := bus.Publish(context.Background(), w.js, events.RequestSubject(r.Metadata.Team), env); err != nil {
		w.t.Fatal(err)
	}
	return id
}

// client calls the API.
type client struct {
	t   *testing.T
	url string
}

// with returns the client reporting to t: a subtest must not fail its
// parent.
func (c *client) with(t *testing.T) *client { return &client{t: t, url: c.url} }

// do sends a request and returns the status, the headers and the body,
// after checking that the answer is JSON.
func (c *client) do(method, path, auth string, body io.Reader) (int, http.Header, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, body)
	if err != nil {
		c.t.Fatal(err)
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

// logBuffer collects log output written from the server's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// lines returns the JSON log lines written so far.
func (l *logBuffer) lines(t *testing.T) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(l.buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
