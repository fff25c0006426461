package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/natstest"
)

// lockedBuffer is written by the dev stack and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// `make demo` must not pass for a demo that never finished.
func TestDemoInterruptedIsNotASuccess(t *testing.T) {
	if testing.Short() {
		t.Skip("long: builds and runs the demo")
	}
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedBuffer{}
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
