// Package precheck is the precheck service: before anything is touched it
// checks the package and the environment of each target, and reports one
// line per check. A failed check fails the saga with nothing changed.
//
// The checks: the artifact's digest (the package is staged in the local
// artifact store on the way, as the plan's "upload the package to the
// designated directory"; md5 passes with a warning), its signature when the
// request names one (minisign, against the keys this service trusts), its
// safety (deploy's extraction rules and limits, package unpack, so an
// unsafe package fails here, before any backup); the environment the
// target's configuration declares (hardware.go, software.go, network.go,
// dependency.go: disk, memory, CPUs, load, OS, database and middleware
// versions, TCP endpoints, bandwidth, third-party services), run
// concurrently by run.go; and that the installed version is the request's
// "from", or, for a first install, that nothing is installed. The step's
// error lists the failed checks with what they measured, for the saga's
// reason and the teams' notices.
package precheck

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"aead.dev/minisign"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/artifact"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/pkg/unpack"
)

// Config of a precheck instance.
type Config struct {
	Instance  string
	Targets   *targets.Registry
	Artifacts *artifact.Store
	// Limits are deploy's limits of a package, checked here first.
	Limits unpack.Limits
	// TrustedKeys verify packages' signatures.
	TrustedKeys []minisign.PublicKey
	Consumer    consumer.Config
	Streams     streams.Config
}

// New returns the precheck service over js.
func New(js jetstream.JetStream, cfg Config, log *slog.Logger, reg prometheus.Registerer) *phase.Service {
	return phase.New(js, phase.Config{
		Service: events.Precheck, Instance: cfg.Instance, Targets: cfg.Targets.Names(),
		Actions: []events.Action{events.ActionCheck}, Consumer: cfg.Consumer, Streams: cfg.Streams,
		Scrub: cfg.Targets.Scrub, Describe: cfg.Targets.Describe,
	}, &Executor{Targets: cfg.Targets, Artifacts: cfg.Artifacts, Limits: cfg.Limits, TrustedKeys: cfg.TrustedKeys}, log, reg)
}

// Executor runs the checks.
type Executor struct {
	Targets   *targets.Registry
	Artifacts *artifact.Store
	// Limits bound what a package may unpack to (package unpack's
	// defaults when zero); deploy's settings must be the same.
	Limits unpack.Limits
	// TrustedKeys verify a package's signature; with none, a signed
	// request fails.
	TrustedKeys []minisign.PublicKey
}

// Execute implements phase.Executor. Every check runs, so the report is
// complete; the step fails if any check does.
func (e *Executor) Execute(ctx context.Context, cmd events.Command, progress phase.Progress) (phase.Outcome, error) {
	t, err := e.Targets.Get(cmd.Target)
	if err != nil {
		return phase.Failure(events.ReasonUnknown, err), nil
	}
	var report []events.ReportLine
	out := map[string]string{}
	if a := cmd.Upgrade.Artifact; a.URL != "" {
		lines, path, err := e.checkPackage(ctx, a, progress)
		if err != nil {
			return phase.Outcome{}, err // retried with back-off
		}
		report = append(report, lines...)
		out["artifact"] = path
	}
	progress("checking the environment")
	checks := Environment(t)
	if cmd.Upgrade.Kind == string(spec.KindInstall) {
		checks = append(checks, NothingInstalled(t))
	} else if from := cmd.Upgrade.From; from != "" {
		checks = append(checks, Installed(t, from))
	}
	lines := Run(ctx, checks, Parallel)
	if ctx.Err() != nil {
		// Stopped, not failed: the command is delivered again.
		return phase.Outcome{}, fmt.Errorf("check the environment: %w", ctx.Err())
	}
	report = append(report, lines...)
	if cmd.Upgrade.From != "" {
		out["installed"] = lines[len(lines)-1].Value
	}
	if failed := Failures(report); failed != "" {
		return phase.Failure("check_failed", errors.New(failed), report...), nil
	}
	return phase.Success(out, report...), nil
}
