package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/testlog"
)

// `make demo` must not pass for a demo that never finished.
func TestDemoInterruptedIsNotASuccess(t *testing.T) {
	if testing.Short() {
		t.Skip("long: builds and runs the demo")
	}
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &testlog.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--demo", "--exit", "--data", t.TempDir() + "/dev", "--ops-addr", "", "--http-addr", ""}, out)
	}()
	natstest.Eventually(t, 2*time.Minute, "the demo's first saga under way", func() bool {
		return strings.Contains(out.String(), "prechecking")
	})
	cancel() // as Ctrl-C does
	select {
	case err := <-done:
		if !errors.Is(err, exitInterrupted) {
			t.Fatalf("err %v, want exit %d:\n%s", err, exitInterrupted, out.String())
		}
	case <-time.After(natstest.Patience):
		t.Fatalf("still running after the interrupt:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "demo interrupted before it finished") {
		t.Fatalf("output:\n%s", out.String())
	}
}
