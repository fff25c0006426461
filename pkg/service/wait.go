package service

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The back-off between attempts to reach a dependency at start: a second,
// doubling up to fifteen. A service started before NATS or PostgreSQL comes
// up with them instead of exiting, as a supervisor would otherwise restart
// it in a loop.
const (
	FirstRetry = time.Second
	MaxRetry   = 15 * time.Second
)

// Starting is a process's readiness before its parts run: not ready, saying
// what it waits for. Run makes one; Env.Wait reports through it.
type Starting struct {
	mu     sync.Mutex
	what   string
	checks []func() error
	done   bool
}

func newStarting() *Starting { return &Starting{what: "starting"} }

// set records what the process waits for.
func (s *Starting) set(what string) {
	s.mu.Lock()
	s.what = what
	s.mu.Unlock()
}

// started replaces the start-up state by the process's ready checks.
func (s *Starting) started(checks []func() error) {
	s.mu.Lock()
	s.checks, s.done = checks, true
	s.mu.Unlock()
}

// Check is the ready check: the start-up state until started, then every
// check of the process.
func (s *Starting) Check() error {
	s.mu.Lock()
	done, what, checks := s.done, s.what, s.checks
	s.mu.Unlock()
	if !done {
		return errors.New(what)
	}
	for _, c := range checks {
		if err := c(); err != nil {
			return err
		}
	}
	return nil
}

// Retry calls try until it succeeds, it fails in a way retryable does not
// accept, or ctx ends. Between attempts it logs what it waits for and why,
// and waits FirstRetry, doubling up to MaxRetry.
func Retry(ctx context.Context, log *slog.Logger, what string, retryable func(error) bool, try func(context.Context) error) error {
	wait := FirstRetry
	for {
		err := try(ctx)
		if err == nil || !retryable(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
		log.Warn("waiting for "+what, "err", err, "retry_in", wait.String())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for %s: %w (last: %w)", what, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, MaxRetry)
	}
}

// Wait is Retry that also reports, on /readyz, what the process waits for.
func (e Env) Wait(ctx context.Context, what string, retryable func(error) bool, try func(context.Context) error) error {
	if e.Starting != nil {
		e.Starting.set("waiting for " + what)
		defer e.Starting.set("starting")
	}
	return Retry(ctx, e.Log, what, retryable, try)
}

// Unreachable says whether err is a failure to reach a server (none
// listening, the connection refused or reset, a time-out, a name not
// resolved yet): worth trying again, unlike a refused password, a
// certificate not trusted or a malformed setting.
func Unreachable(err error) bool {
	var (
		alert  tls.AlertError
		verify *tls.CertificateVerificationError
		record tls.RecordHeaderError
		unk    x509.UnknownAuthorityError
		inv    x509.CertificateInvalidError
		host   x509.HostnameError
		dns    *net.DNSError
		ne     net.Error
	)
	if errors.As(err, &alert) || errors.As(err, &verify) || errors.As(err, &record) ||
		errors.As(err, &unk) || errors.As(err, &inv) || errors.As(err, &host) {
		return false
	}
	return errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.As(err, &dns) || errors.As(err, &ne) && ne.Timeout()
}

// Connect connects as Connect does, waiting while no server answers.
func (e Env) Connect(ctx context.Context, c Common, name string, log *slog.Logger) (nc *nats.Conn, js jetstream.JetStream, err error) {
	err = e.Wait(ctx, "NATS at "+redact(c.NATSURL), Unreachable, func(context.Context) error {
		nc, js, err = Connect(c, name, log)
		return err
	})
	return nc, js, err
}
