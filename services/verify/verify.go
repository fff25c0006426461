// Package verify is the verify service: after a batch is deployed it probes
// each target until the target proves healthy and runs the expected version,
// or until it proves it does not. A failed verification rolls the saga back.
//
// The checks, from the target's health settings (pkg/targets): an HTTP
// health URL that must answer 2xx, and an optional version URL that must
// answer the version being installed, as plain text or as JSON with a
// "version" field. The step passes after Successes good probes in a row and
// fails after Failures bad ones in a row, or shortly before the step's
// deadline, so that the failure is reported before the coordinator times the
// step out. A target without a health URL fails: what cannot be verified
// must not pass.
package verify

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/pkg/targets"
)

// Reasons a verification fails with.
const (
	ReasonNotConfigured = "not_configured" // the target has no health URL
	ReasonUnhealthy     = "unhealthy"      // the health URL did not answer 2xx
	ReasonWrongVersion  = "wrong_version"  // the version URL answered another version, or none readable
	ReasonDeadline      = "deadline"       // the step's deadline came before a verdict
)

// deadlineMargin is how long before the step's deadline verification gives
// up, so its failure reaches the coordinator before the step times out.
const deadlineMargin = time.Second

// Config of a verify instance.
type Config struct {
	Instance string
	Targets  *targets.Registry
	Consumer consumer.Config
	Streams  streams.Config
	// Client makes the probes; nil means a default client. Per-request
	// time-outs are set by the executor, not by the client.
	Client *http.Client
}

// New returns the verify service over js.
func New(js jetstream.JetStream, cfg Config, log *slog.Logger, reg prometheus.Registerer) *phase.Service {
	return phase.New(js, phase.Config{
		Service: events.Verify, Instance: cfg.Instance, Targets: cfg.Targets.Names(),
		Actions: []events.Action{events.ActionProbe}, Consumer: cfg.Consumer, Streams: cfg.Streams,
		Scrub: cfg.Targets.Scrub,
	}, &Executor{Targets: cfg.Targets, Client: cfg.Client}, log, reg)
}

// Executor probes targets.
type Executor struct {
	Targets *targets.Registry
	Client  *http.Client
}

// Execute implements phase.Executor. It polls the target until a verdict,
// the step's deadline (less a margin) or ctx's end; the last returns ctx's
// error, so that the command is tried again rather than reported.
func (e *Executor) Execute(ctx context.Context, cmd events.Command, progress phase.Progress) (phase.Outcome, error) {
	t, err := e.Targets.Get(cmd.Target)
	if err != nil {
		return phase.Failure(events.ReasonUnknown, err), nil
	}
	if t.Health.URL == "" {
		return phase.Failure(ReasonNotConfigured, fmt.Errorf("target %s has no health URL configured, so it cannot be verified", t.Name)), nil
	}
	p := newProber(e.client(), t.Health, expectedVersion(cmd.Upgrade))
	var stopAt time.Time
	if !cmd.Deadline.IsZero() {
		stopAt = cmd.Deadline.Add(-deadlineMargin)
	}
	return p.run(ctx, stopAt, progress)
}

func (e *Executor) client() *http.Client {
	if e.Client != nil {
		return e.Client
	}
	return &http.Client{}
}

// expectedVersion is the version the target must run after the step: the
// new one for an upgrade, the installed one for a maintenance run (which
// names no "to"), none if the request names neither.
func expectedVersion(u events.Upgrade) string {
	if u.To != "" {
		return u.To
	}
	return u.From
}
