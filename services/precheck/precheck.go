// Package precheck is the precheck service: before anything is touched it
// checks the package and the environment of each target, and reports one
// line per check. A failed check fails the saga with nothing changed.
//
// The checks: the artifact's digest (the package is staged in the local
// artifact store on the way, as the plan's "upload the package to the
// designated directory"; md5 passes with a warning), its signature when the
// request names one (minisign, against the keys this service trusts), its
// safety (deploy's extraction rules and limits, package unpack, so an
// unsafe package fails here, before any backup), free disk at the target's
// root, and that the installed version is the request's "from".
package precheck

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"

	"aead.dev/minisign"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/artifact"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase"
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
	var failed []string
	add := func(name string, err error, ok string) {
		line := events.ReportLine{Name: name, OK: err == nil, Detail: ok}
		if err != nil {
			line.Detail = err.Error()
			failed = append(failed, name)
		}
		report = append(report, line)
	}
	out := map[string]string{}
	if a := cmd.Upgrade.Artifact; a.URL != "" {
		lines, path, err := e.checkPackage(ctx, a, progress)
		if err != nil {
			return phase.Outcome{}, err // retried with back-off
		}
		for _, l := range lines {
			report = append(report, l)
			if l.LineStatus() == events.CheckFail {
				failed = append(failed, l.Name)
			}
		}
		out["artifact"] = path
	}
	free, err := freeDisk(t.Root)
	if err == nil && free < int64(t.Precheck.MinFreeDisk) {
		err = fmt.Errorf("%s free at %s, need %s", targets.Bytes(free), t.Root, t.Precheck.MinFreeDisk)
	}
	add("free disk", err, fmt.Sprintf("%s free at %s (need %s)", targets.Bytes(free), t.Root, t.Precheck.MinFreeDisk))
	if from := cmd.Upgrade.From; from != "" {
		installed, err := t.CurrentVersion()
		if err == nil && installed != from {
			err = fmt.Errorf("installed version is %q, the request upgrades from %q", installed, from)
		}
		add("installed version", err, "installed version is "+from)
		out["installed"] = installed
	}
	if len(failed) > 0 {
		return phase.Failure("check_failed", fmt.Errorf("failed: %v", failed), report...), nil
	}
	return phase.Success(out, report...), nil
}

func freeDisk(dir string) (int64, error) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("target root %s does not exist", dir)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * st.Bsize, nil
}
