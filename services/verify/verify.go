// Package verify is the verify service: after a batch is deployed it checks
// each target until the target proves healthy and runs the expected version,
// or until it proves it does not; after the last batch, for a watch period,
// it keeps watching every target. A failed verification, or a failure in
// the watch, rolls the saga back.
//
// The checks, from the target's configuration (pkg/targets): probed in
// rounds every Health.Interval, an HTTP health URL that must answer 2xx, an
// optional version URL that must answer the version being installed (plain
// text, or JSON with a "version" field), and the target's HTTP checks
// (status, body, a JSON field, latency) and TCP checks; a round passes if
// every check does, and the probes pass after Successes good rounds in a row
// and fail after Failures bad ones. Then its smoke commands run once, like
// hooks. Meanwhile its metric analyses (analysis.go) query Prometheus every
// interval and hold each result against their condition. The step fails on
// the first part that fails, or shortly before the step's deadline, so that
// the failure is reported before the coordinator times the step out; its
// error lists what failed with the value measured. A target with nothing to
// check fails: what cannot be verified must not pass.
//
// A watch (the action watch, after the last batch) probes and runs the
// analyses until the command's NotAfter, the end of the watch period: the
// probes fail after Failures bad rounds in a row, an analysis past its
// limits; reaching the end passes.
package verify

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
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
	ReasonNotConfigured = "not_configured" // nothing to check, or an analysis it cannot run
	ReasonUnhealthy     = "unhealthy"      // the health URL did not answer 2xx
	ReasonWrongVersion  = "wrong_version"  // the version URL answered another version, or none readable
	ReasonDeadline      = "deadline"       // the step's deadline came before a verdict
	ReasonSmokeFailed   = "smoke_failed"   // a smoke command failed
	ReasonAnalysis      = "analysis_failed"
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
	// Prometheus answers the analyses' queries; nil: none configured, and
	// a verification with an analysis fails.
	Prometheus Querier
}

// New returns the verify service over js.
func New(js jetstream.JetStream, cfg Config, log *slog.Logger, reg prometheus.Registerer) *phase.Service {
	return phase.New(js, phase.Config{
		Service: events.Verify, Instance: cfg.Instance, Targets: cfg.Targets.Names(),
		Actions: []events.Action{events.ActionProbe, events.ActionWatch}, Consumer: cfg.Consumer, Streams: cfg.Streams,
		Scrub: cfg.Targets.Scrub, Describe: cfg.Targets.Describe,
	}, &Executor{Targets: cfg.Targets, Client: cfg.Client, Prometheus: cfg.Prometheus}, log, reg)
}

// Executor verifies and watches targets.
type Executor struct {
	Targets    *targets.Registry
	Client     *http.Client
	Prometheus Querier
}

// Execute implements phase.Executor. It checks the target until a verdict,
// the step's deadline (less a margin), the end of a watch or ctx's end; the
// last returns ctx's error, so that the command is tried again rather than
// reported.
func (e *Executor) Execute(ctx context.Context, cmd events.Command, progress phase.Progress) (phase.Outcome, error) {
	t, err := e.Targets.Get(cmd.Target)
	if err != nil {
		return phase.Failure(events.ReasonUnknown, err), nil
	}
	watching := cmd.Action == events.ActionWatch
	analyses, err := selectAnalyses(t, cmd.Upgrade.Analyses)
	switch {
	case err != nil:
		return phase.Failure(ReasonNotConfigured, err), nil
	case len(analyses) > 0 && e.Prometheus == nil:
		return phase.Failure(ReasonNotConfigured, fmt.Errorf("target %s has analyses (%s), but this verify service has no Prometheus URL (--prometheus-url)",
			t.Name, names(analyses))), nil
	case !probes(t) && len(analyses) == 0 && (watching || len(t.Verify.Smoke) == 0):
		return phase.Failure(ReasonNotConfigured, fmt.Errorf("target %s has no health URL and no verify checks configured, so it cannot be verified", t.Name)), nil
	}
	var stopAt time.Time
	switch {
	case watching && !cmd.NotAfter.IsZero():
		stopAt = cmd.NotAfter // the end of the watch period
	case !cmd.Deadline.IsZero():
		stopAt = cmd.Deadline.Add(-deadlineMargin)
	}
	v := &verification{e: e, t: t, expect: expectedVersion(cmd.Upgrade), analyses: analyses, stopAt: stopAt,
		watching: watching, progress: serialized(progress)}
	return v.run(ctx)
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

func names(as []analysis) string {
	var out []string
	for _, a := range as {
		out = append(out, a.Name)
	}
	return strings.Join(out, ", ")
}

// serialized lets the probes and every analysis report progress at once.
func serialized(p phase.Progress) phase.Progress {
	var mu sync.Mutex
	return func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		p(msg)
	}
}
