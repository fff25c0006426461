package service_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/service"
)

// Not parallel: Parse reads the process's environment, which t.Setenv
// changes for every test; the parallel tests of the package wait until this
// one has ended.
func TestFlagsComeFromTheEnvironmentAndSecretsAreMasked(t *testing.T) {
	t.Setenv("UPSHIFT_NATS_URL", "nats://deploy:s3cret@from-env:4222,nats://tok3n@other:4222")
	t.Setenv("UPSHIFT_NATS_PASSWORD", "hunter2")
	var c service.Common
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.Register(fs, ":0")
	if err := service.Parse(fs, []string{"--replicas", "3"}); err != nil {
		t.Fatal(err)
	}
	if c.NATSURL != "nats://deploy:s3cret@from-env:4222,nats://tok3n@other:4222" || c.Replicas != 3 || string(c.NATSPassword) != "hunter2" {
		t.Fatalf("config %+v", c)
	}
	settings := fmt.Sprint(service.Settings(fs)...)
	for _, secret := range []string{"hunter2", "s3cret", "tok3n"} {
		if strings.Contains(settings, secret) {
			t.Fatalf("settings show %s: %s", secret, settings)
		}
	}
	if !strings.Contains(settings, "nats-password*****") || !strings.Contains(settings, "nats://*****@from-env:4222,nats://*****@other:4222") {
		t.Fatalf("settings %s", settings)
	}
	if _, err := service.NewLogger(io.Discard, "loud", "json"); err == nil {
		t.Fatal("bad level accepted")
	}
}

func TestOpsServer(t *testing.T) {
	t.Parallel()
	ready := errors.New("consumers not ready")
	ops, err := service.NewOpsServer("127.0.0.1:0", service.NewRegistry(), func() error { return ready })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- ops.Run(ctx) }()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + ops.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "consumers not ready") {
		t.Fatalf("readyz %d %s", code, body)
	}
	ready = nil
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("readyz when ready %d", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics %d", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("did not shut down")
	}
}
