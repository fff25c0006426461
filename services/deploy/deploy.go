// Package deploy is the deploy service: it installs a verified release
// package on a target and switches the target to it, or switches it back.
//
// A target's root holds releases/<version>/ (one directory per installed
// version), current -> releases/<version> (the release in service) and,
// optionally, shared/ (configuration and data kept across releases, linked
// into each release that does not bring its own).
//
// Actions done now:
//   - apply: stage the package through the artifact store (digest checked),
//     extract it safely into releases/<version>, then stop, apply the
//     release's SQL migrations (migrate.go), run the migrate hook, switch
//     the current link atomically and start; on success remove releases
//     beyond the target's keep count. If stop, migrate or start fails, the
//     previous release is switched back to and started again before the
//     failure is reported: the compensating rollback then finds it current
//     and rightly does nothing.
//   - rollback: switch back to the version the apply came from (stop,
//     switch, start); a no-op when that version is already current, so the
//     compensation of an apply that never ran leaves a healthy app alone.
//
// Each step holds an exclusive flock on <root>/.upshift.lock, in case two
// processes serve one target. A release is extracted into a temporary
// directory, its marker file written last, the whole made durable (one
// syncfs, not an fsync per file) and only then renamed into place; the
// current link is switched by rename. So a crash leaves the old release or
// the new one in service, a release in place is complete, and a redelivered
// apply finishes the job.
//
// Extraction (package unpack, whose rules precheck applies first) refuses absolute paths, ".." escapes, paths through a link,
// symbolic links that resolve outside the release, hard links, device and
// fifo entries, and packages over the size or file-count limit. Setuid,
// setgid and sticky bits are stripped (not refused): a package built on a
// workstation often carries setgid directories, and stripping removes the
// risk without failing the deploy. Owners are not restored: files belong to
// the user the service runs as.
//
//   - maintain: the actions of a Maintenance request (maintain.go): reindex,
//     analyze and vacuum the target's databases, run its purge rules,
//     archive its old log files and check that logging still writes,
//     compare its configuration files with a recorded baseline or record
//     one. Nothing compensates it here: the actions that change data are
//     undone by the restore of the backup the saga takes before them.
//
// Rollback does not run down-migrations: undoing the database is
// backup.restore's compensation.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

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

// Reasons of a failed step, as reported to the coordinator.
const (
	ReasonDigestMismatch      = "digest_mismatch"
	ReasonArtifactUnavailable = "artifact_unavailable"
	ReasonArtifactUnsupported = "artifact_unsupported"
	ReasonArtifactNotAllowed  = "artifact_not_allowed"
	ReasonArtifactTooLarge    = "artifact_too_large"
	ReasonUnsafePackage       = "unsafe_package"
	ReasonBadPackage          = "bad_package"
	ReasonReleaseConflict     = "release_conflict"
	ReasonInvalidVersion      = "invalid_version"
	ReasonStopFailed          = "stop_failed"
	ReasonMigrateFailed       = "migrate_failed"
	ReasonStartFailed         = "start_failed"
	ReasonSwitchFailed        = "switch_failed"
	ReasonNoPreviousRelease   = "no_previous_release"
	ReasonNotEmpty            = "not_empty"
)

// Errors, for errors.Is.
var (
	// ErrUnsafePackage is a package entry that would write outside its
	// release, link out of it, or is of a kind a release must not hold:
	// package unpack's rule, which precheck applies too.
	ErrUnsafePackage = unpack.ErrUnsafe
	// ErrBadPackage is a package that is not a readable .tar.gz.
	ErrBadPackage = unpack.ErrBad
	// ErrReleaseConflict is a release directory that holds another package.
	ErrReleaseConflict = errors.New("release conflict")
)

// MarkerFile, in a release directory, records it as upshift's (see Marker):
// the digest of the package it was extracted from, so a re-run reuses the
// release only if it is the same package, and whether it is good.
const MarkerFile = unpack.MarkerFile

// LockFile, in a target's root, is locked for the whole of a step, in case
// two processes serve one target.
const LockFile = ".upshift.lock"

// StoppedFile, in a target's root, names the release an apply or a
// rollback stopped and has not started again yet. An apply or rollback
// interrupted between its stop and its start (the service killed, or shut
// down past its grace) leaves it: the service starts the release in
// service when it starts again (Recover), and the compensating rollback
// starts it even though current never moved, or already moved back;
// without it the rollback would find nothing to do and leave the
// application down.
const StoppedFile = ".upshift-stopped"

// Config of a deploy instance.
type Config struct {
	Instance  string
	Targets   *targets.Registry
	Artifacts *artifact.Store
	// Limits bound a release (package unpack's defaults when zero).
	Limits   unpack.Limits
	Consumer consumer.Config
	Streams  streams.Config
}

// New returns the deploy service over js.
func New(js jetstream.JetStream, cfg Config, log *slog.Logger, reg prometheus.Registerer) *phase.Service {
	return phase.New(js, phase.Config{
		Service: events.Deploy, Instance: cfg.Instance, Targets: cfg.Targets.Names(),
		Actions: []events.Action{events.ActionApply, events.ActionRollback, events.ActionMaintain}, Consumer: cfg.Consumer, Streams: cfg.Streams,
		Scrub: cfg.Targets.Scrub, Describe: cfg.Targets.Describe,
	}, &Executor{Targets: cfg.Targets, Artifacts: cfg.Artifacts, Limits: cfg.Limits, Log: log}, log, reg)
}

// Executor applies and rolls back releases.
type Executor struct {
	Targets   *targets.Registry
	Artifacts *artifact.Store
	Log       *slog.Logger
	// Limits bound a release's size and entries (package unpack's
	// defaults when zero).
	Limits unpack.Limits
}

// Execute implements phase.Executor.
func (e *Executor) Execute(ctx context.Context, cmd events.Command, progress phase.Progress) (phase.Outcome, error) {
	t, err := e.Targets.Get(cmd.Target)
	if err != nil {
		return phase.Failure(events.ReasonUnknown, err), nil
	}
	log := e.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &step{e: e, t: t, cmd: cmd, progress: progress,
		log: log.With("saga", cmd.Saga, "step", cmd.Step, "target", cmd.Target, "action", cmd.Action)}
	switch cmd.Action {
	case events.ActionApply:
		return s.apply(ctx)
	case events.ActionRollback:
		return s.rollback(ctx)
	case events.ActionMaintain:
		return s.maintain(ctx)
	}
	return phase.Failure(events.ReasonUnsupported, fmt.Errorf("deploy does not perform %q", cmd.Action)), nil
}

// checkVersion refuses a version that is not one plain directory name, so a
// request cannot aim a release, a switch or a clean-up outside releases/.
// A leading dot is refused too: those names are the service's own.
func checkVersion(what, v string) error {
	if v == "" || v == "." || v == ".." || strings.HasPrefix(v, ".") || strings.ContainsAny(v, "/\\\x00") {
		return fmt.Errorf("%s version %q is not a plain directory name", what, v)
	}
	return nil
}
