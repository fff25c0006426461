// Package precheck is the precheck service: before anything is touched it
// checks the package and the environment of each target, and reports one
// line per check. A failed check fails the saga with nothing changed.
//
// The checks: the artifact's digest (the package is staged in the local
// artifact store on the way, as the plan's "upload the package to the
// designated directory"), free disk at the target's root, and that the
// installed version is the request's "from", or, for a first install, that
// nothing is installed.
package precheck

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/artifact"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/pkg/targets"
)

// Config of a precheck instance.
type Config struct {
	Instance  string
	Targets   *targets.Registry
	Artifacts *artifact.Store
	Consumer  consumer.Config
	Streams   streams.Config
}

// New returns the precheck service over js.
func New(js jetstream.JetStream, cfg Config, log *slog.Logger, reg prometheus.Registerer) *phase.Service {
	return phase.New(js, phase.Config{
		Service: events.Precheck, Instance: cfg.Instance, Targets: cfg.Targets.Names(),
		Actions: []events.Action{events.ActionCheck}, Consumer: cfg.Consumer, Streams: cfg.Streams,
		Scrub: cfg.Targets.Scrub,
	}, &Executor{Targets: cfg.Targets, Artifacts: cfg.Artifacts}, log, reg)
}

// Executor runs the checks.
type Executor struct {
	Targets   *targets.Registry
	Artifacts *artifact.Store
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
		progress("staging " + a.URL)
		path, err := e.Artifacts.Fetch(ctx, a.URL, a.Digest)
		if err != nil && (ctx.Err() != nil || errors.Is(err, artifact.ErrTransient)) {
			// Retried with back-off; reported failed at the last delivery.
			return phase.Outcome{}, fmt.Errorf("stage artifact: %w", err)
		}
		add("artifact digest", err, "staged and verified "+a.Digest)
		out["artifact"] = path
	}
	free, err := freeDisk(t.Root)
	if err == nil && free < int64(t.Precheck.MinFreeDisk) {
		err = fmt.Errorf("%s free at %s, need %s", targets.Bytes(free), t.Root, t.Precheck.MinFreeDisk)
	}
	add("free disk", err, fmt.Sprintf("%s free at %s (need %s)", targets.Bytes(free), t.Root, t.Precheck.MinFreeDisk))
	if cmd.Upgrade.Kind == string(spec.KindInstall) {
		add("nothing installed", nothingInstalled(t), "no current link and no release in "+t.Releases())
	} else if from := cmd.Upgrade.From; from != "" {
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

// nothingInstalled checks that a first install finds an empty target: no
// current link and no release directory, in service or not. A release put
// there by hand is for `upshift adopt`, not to be installed over.
func nothingInstalled(t targets.Target) error {
	cur, err := t.CurrentVersion()
	if err != nil {
		return err
	}
	if cur != "" {
		return fmt.Errorf("release %s is installed and current: an install needs an empty target (upgrade from %s instead)", cur, cur)
	}
	entries, err := os.ReadDir(t.Releases())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", t.Releases(), err)
	}
	var found []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			found = append(found, e.Name())
		}
	}
	if len(found) > 0 {
		return fmt.Errorf("%s holds %s though none is current: adopt or remove it first", t.Releases(), strings.Join(found, ", "))
	}
	return nil
}
