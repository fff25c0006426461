package precheck_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/natsembed"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/precheck"
)

// freePort is a port nothing listens on (the kernel's pick, released).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	b.Write(buf[:n])
	return resp.StatusCode, b.String()
}

// A service started before NATS does not exit: it waits, alive but not
// ready, saying what for, and comes up once the server does. SIGTERM (the
// context) ends the wait.
func TestAServiceStartedBeforeNATSWaitsForIt(t *testing.T) {
	t.Parallel()
	served, err := targets.New(map[string]targets.Target{"web-1": {Root: t.TempDir()}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	natsPort, opsPort := freePort(t), freePort(t)
	ops := "http://127.0.0.1:" + strconv.Itoa(opsPort)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		s := &precheck.Settings{Settings: phase.Settings{Targets: served}}
		done <- service.Run(ctx, precheck.Program(s), []string{"--nats-url", "nats://127.0.0.1:" + strconv.Itoa(natsPort),
			"--ops-addr", "127.0.0.1:" + strconv.Itoa(opsPort), "--artifact-sources", "https://example.com/", "--log-level", "error"})
	}()
	natstest.Eventually(t, natstest.Patience, "the ops server up", func() bool {
		select {
		case err := <-done:
			t.Fatalf("the service stopped while NATS was down: %v", err)
		default:
		}
		code, _ := get(ops + "/healthz")
		return code == http.StatusOK
	})
	// Long enough for a second attempt (a second after the first).
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("the service stopped while NATS was down: %v", err)
		default:
		}
		if code, body := get(ops + "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "waiting for NATS") {
			t.Fatalf("readyz while NATS is down: %d %q", code, body)
		}
		if code, _ := get(ops + "/healthz"); code != http.StatusOK {
			t.Fatalf("healthz while NATS is down: %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: natsPort})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	natstest.Eventually(t, natstest.Patience, "ready once NATS is up", func() bool {
		select {
		case err := <-done:
			t.Fatalf("the service stopped: %v", err)
		default:
		}
		code, _ := get(ops + "/readyz")
		return code == http.StatusOK
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stopped: %v", err)
	}
}

// SIGTERM ends the wait: the service stops at once, saying what it waited for.
func TestAServiceWaitingForNATSStopsWhenAsked(t *testing.T) {
	t.Parallel()
	served, err := targets.New(map[string]targets.Target{"web-1": {Root: t.TempDir()}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	s := &precheck.Settings{Settings: phase.Settings{Targets: served}}
	start := time.Now()
	err = service.Run(ctx, precheck.Program(s), []string{"--nats-url", "nats://127.0.0.1:" + strconv.Itoa(freePort(t)),
		"--ops-addr", "127.0.0.1:0", "--artifact-sources", "https://example.com/", "--log-level", "error"})
	if err == nil || !strings.Contains(err.Error(), "waiting for NATS") {
		t.Fatalf("err %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %s to stop", took)
	}
}
