package precheck_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/pkg/targets"
)

func TestOSCheck(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		os   targets.OSCheck
		ok   bool
		says string
	}{
		{"linux with any kernel", targets.OSCheck{Names: []string{"plan9", "linux"}, Kernel: ">=2.6"}, true, "kernel"},
		{"not that OS", targets.OSCheck{Names: []string{"plan9"}}, false, "is none of plan9"},
		{"kernel too old for the constraint", targets.OSCheck{Kernel: "<1"}, false, "does not satisfy <1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			status := map[bool]events.CheckStatus{true: events.CheckPass, false: events.CheckFail}[c.ok]
			expect(t, checked(t, targets.Precheck{OS: &c.os}), "os", status, c.says)
		})
	}
}

// dsnFile writes a DSN to a file and returns its path.
func dsnFile(t *testing.T, dsn string) string {
	path := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(path, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The server's version, read from the real server, against a constraint it
// meets and one it does not; the report names the database, never its DSN.
func TestDatabaseVersion(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, version string
		status        events.CheckStatus
		says          string
	}{
		{"satisfied", ">=10", events.CheckPass, "PostgreSQL 1"},
		{"unsatisfied", "<10", events.CheckFail, "does not satisfy <10"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out := checkedWith(t, []targets.Database{{Name: "orders", DSNFile: dsnFile(t, pgtest.ServerURL())}},
				targets.Precheck{Databases: []targets.DatabaseCheck{{Name: "orders", Version: c.version}}})
			l := expect(t, out, "database orders", c.status, c.says)
			if !strings.HasPrefix(l.Value, "PostgreSQL ") || l.Threshold != c.version {
				t.Fatalf("line %+v", l)
			}
		})
	}
}

// A DSN from the environment (not parallel: it sets a variable).
func TestDatabaseDSNFromTheEnvironment(t *testing.T) {
	t.Setenv("UPSHIFT_TEST_ORDERS_DSN", pgtest.ServerURL())
	expect(t, checkedWith(t, []targets.Database{{Name: "orders", DSNEnv: "UPSHIFT_TEST_ORDERS_DSN"}},
		targets.Precheck{Databases: []targets.DatabaseCheck{{Name: "orders", Version: ">=10"}}}), "database orders", events.CheckPass, "PostgreSQL")
	expect(t, checkedWith(t, []targets.Database{{Name: "orders", DSNEnv: "UPSHIFT_TEST_NO_SUCH_DSN"}},
		targets.Precheck{Databases: []targets.DatabaseCheck{{Name: "orders"}}}), "database orders", events.CheckFail, "UPSHIFT_TEST_NO_SUCH_DSN")
}

// A DSN with a password, whether the check passes or fails, and however it
// fails, is in no report line and no error.
func TestADSNNeverAppears(t *testing.T) {
	t.Parallel()
	const password = "s3cr3t-hunter2"
	server, err := url.Parse(pgtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(u *url.URL)) string {
		u := *server
		u.User = url.UserPassword("postgres", password)
		f(&u)
		return u.String()
	}
	closed := closedPort(t)
	for _, c := range []struct {
		name, dsn, version string
		status             events.CheckStatus
	}{
		{"passes", with(func(*url.URL) {}), ">=10", events.CheckPass},
		{"version unsatisfied", with(func(*url.URL) {}), "<10", events.CheckFail},
		{"no such database", with(func(u *url.URL) { u.Path = "/no_such_db_" + password }), "", events.CheckFail},
		{"nothing listening", with(func(u *url.URL) { u.Host = closed }), "", events.CheckFail},
		{"does not parse", "postgres://postgres:" + password + "@127.0.0.1:notaport/test", "", events.CheckFail},
		{"key=value", fmt.Sprintf("host=%s port=%s user=postgres password=%s dbname=nope connect_timeout=5", server.Hostname(), server.Port(), password), "", events.CheckFail},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out := checkedWith(t, []targets.Database{{Name: "orders", DSNFile: dsnFile(t, c.dsn)}},
				targets.Precheck{Databases: []targets.DatabaseCheck{{Name: "orders", Version: c.version}}})
			expect(t, out, "database orders", c.status, "")
			all, _ := json.Marshal(out)
			if strings.Contains(string(all), password) || strings.Contains(string(all), c.dsn) {
				t.Fatalf("the DSN's password is in the outcome: %s", all)
			}
			t.Logf("%s", line(t, out, "database orders").Detail)
		})
	}
}

// closedPort is an address where nothing listens.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// script writes an executable that prints out and exits with code.
func script(t *testing.T, out string, code int) string {
	path := filepath.Join(t.TempDir(), "version.sh")
	body := fmt.Sprintf("#!/bin/sh\necho '%s'\nexit %d\n", out, code)
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMiddlewareVersion(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/json":
			fmt.Fprint(w, `{"build": {"version": "1.25.3", "commit": "abc"}}`)
		case "/text":
			fmt.Fprint(w, "Server: redis_version:7.2.4 mode=standalone")
		case "/slow":
			time.Sleep(2 * time.Second)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	for _, c := range []struct {
		name   string
		m      targets.MiddlewareCheck
		status events.CheckStatus
		says   string
	}{
		{"command, satisfied", targets.MiddlewareCheck{Command: []string{script(t, "broker version 2.4.1 (build 7)", 0)}, Version: ">=2 <3"}, events.CheckPass, "2.4.1"},
		{"command, unsatisfied", targets.MiddlewareCheck{Command: []string{script(t, "broker version 2.4.1", 0)}, Version: ">=3"}, events.CheckFail, "2.4.1 does not satisfy >=3"},
		{"command with a pattern", targets.MiddlewareCheck{Command: []string{script(t, "v1 protocol, release 5.0.2", 0)}, Pattern: `release (\S+)`, Version: "^5"}, events.CheckPass, "5.0.2"},
		{"command fails", targets.MiddlewareCheck{Command: []string{script(t, "no such thing", 3)}, Version: ">=1"}, events.CheckFail, "exited 3: no such thing"},
		{"json field", targets.MiddlewareCheck{URL: srv.URL + "/json", JSONField: "build.version", Version: ">=1.24"}, events.CheckPass, "1.25.3"},
		{"json field, unsatisfied", targets.MiddlewareCheck{URL: srv.URL + "/json", JSONField: "build.version", Version: "~1.24"}, events.CheckFail, "does not satisfy ~1.24"},
		{"json field missing", targets.MiddlewareCheck{URL: srv.URL + "/json", JSONField: "build.tag"}, events.CheckFail, "no field build.tag"},
		{"regex on a body", targets.MiddlewareCheck{URL: srv.URL + "/text", Pattern: `redis_version:(\S+)`, Version: ">=7.0"}, events.CheckPass, "7.2.4"},
		{"not found", targets.MiddlewareCheck{URL: srv.URL + "/none", Version: ">=1"}, events.CheckFail, "HTTP 404"},
		{"slow", targets.MiddlewareCheck{URL: srv.URL + "/slow", Version: ">=1", Timeout: targets.Duration{Duration: 300 * time.Millisecond}}, events.CheckFail, "timed out after 300ms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.m.Name = "broker"
			expect(t, checked(t, targets.Precheck{Middleware: []targets.MiddlewareCheck{c.m}}), "middleware broker", c.status, c.says)
		})
	}
}
