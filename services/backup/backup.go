// Package backup is the backup service: before a deploy touches a target it
// archives the release in service and the target's configured extra paths
// (configuration under shared/, say) and dumps the target's databases
// (pkg/pgdump), verifies both, and, as the saga's compensation after a
// failed deploy has been rolled back, restores those paths exactly as they
// were and each database as it was dumped, proven by its row counts.
//
// The backup of one saga for one target lives in <backup dir>/<saga id>/: a
// tar.gz archive and manifest.json, which lists every entry with its mode and
// sha256 and the archive's own sha256. The manifest is written last, after
// the archive has been read back and checked against it, so its presence
// means a complete, verified backup; restore finds it from the saga id and
// the target's configuration alone. Restore never works from an archive whose
// checksum does not match, replaces files by rename (a running program keeps
// the file it has open), and touches nothing outside the backed-up paths.
// File modes are kept, owners are not. A finished backup is then moved to a
// JetStream Object Store bucket (store.go), unless the service keeps
// backups on the host's disk; retention (retention.go) keeps the newest N
// per target and software, and every one of a saga not over.
package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/pgdump"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/pkg/targets"
)

// Reasons of the failures this service reports.
const (
	ReasonNothingInstalled = "nothing_installed" // archive: no current release to back up
	ReasonUnsupportedFile  = "unsupported_file"  // archive: a fifo, socket or device in a backed-up path
	ReasonArchiveFailed    = "archive_failed"    // archive: writing the archive failed
	ReasonVerifyFailed     = "verify_failed"     // archive: the archive read back does not match
	ReasonNoBackup         = "no_backup"         // restore: no complete backup for the saga
	ReasonCorrupt          = "backup_corrupt"    // restore: the archive does not match its manifest
	ReasonUnsafe           = "unsafe_backup"     // restore: an entry is absolute or escapes the root
	ReasonRestoreFailed    = "restore_failed"    // restore: writing the tree back failed
	ReasonBadConfig        = "bad_config"        // the target's backup settings cannot work
	ReasonDatabaseClient   = "database_client"   // archive: pg_dump or pg_restore missing, or older than the server
	ReasonDumpFailed       = "dump_failed"       // archive: dumping a database failed
	ReasonRestoreMismatch  = "restore_mismatch"  // restore: a restored database's rows differ from the backup's
)

// Errors behind the reasons, for errors.Is.
var (
	ErrNothingInstalled = errors.New("nothing installed")
	ErrUnsupportedFile  = errors.New("unsupported file type")
	ErrNoBackup         = errors.New("no backup")
	ErrCorrupt          = errors.New("backup corrupt")
	ErrUnsafe           = errors.New("unsafe backup entry")
	ErrBadConfig        = errors.New("bad backup configuration")
	ErrDumpFailed       = errors.New("database dump failed")
)

// Files of one backup.
const (
	ArchiveFile  = "backup.tar.gz"
	ManifestFile = "manifest.json"
)

// Config of a backup instance.
type Config struct {
	Instance string
	Targets  *targets.Registry
	// Tools dump and restore the targets' databases.
	Tools pgdump.Tools
	// Store keeps the backups in an Object Store bucket; nil: in each
	// target's backup directory.
	Store *Store
	// Keep is how many backups per target and software to keep (0: all).
	Keep     int
	Consumer consumer.Config
	Streams  streams.Config
}

// New returns the backup service over js.
func New(js jetstream.JetStream, cfg Config, log *slog.Logger, reg prometheus.Registerer) *phase.Service {
	return phase.New(js, phase.Config{
		Service: events.Backup, Instance: cfg.Instance, Targets: cfg.Targets.Names(),
		Actions: []events.Action{events.ActionArchive, events.ActionRestore, events.ActionCheck}, Consumer: cfg.Consumer, Streams: cfg.Streams,
		Scrub: cfg.Targets.Scrub, Describe: cfg.Targets.Describe,
	}, &Executor{Targets: cfg.Targets, Tools: cfg.Tools, Store: cfg.Store, Keep: cfg.Keep, Ended: EndedFromEvents(js)}, log, reg)
}

// Executor archives and restores.
type Executor struct {
	Targets *targets.Registry
	// Tools dump and restore the targets' databases.
	Tools pgdump.Tools
	// Store keeps the backups in an Object Store bucket; nil: in each
	// target's backup directory.
	Store *Store
	// Keep is how many backups per target and software retention keeps
	// (0: all); Ended says which sagas are over (retention never removes
	// the backup of one that is not).
	Keep  int
	Ended Ended
}

// Execute implements phase.Executor. Anything that goes wrong on the target
// is a reported failure; only a cancelled ctx is returned as an error, so the
// command is redelivered and done again (both actions are idempotent).
func (e *Executor) Execute(ctx context.Context, cmd events.Command, progress phase.Progress) (phase.Outcome, error) {
	t, err := e.Targets.Get(cmd.Target)
	if err != nil {
		return phase.Failure(events.ReasonUnknown, err), nil
	}
	from := From(cmd)
	dir, err := e.dir(t, from)
	if err != nil {
		return phase.Failure(ReasonBadConfig, err), nil
	}
	var out map[string]string
	var report []events.ReportLine
	switch cmd.Action {
	case events.ActionArchive:
		dir, err = e.dir(t, cmd.Saga)
		if err != nil {
			return phase.Failure(ReasonBadConfig, err), nil
		}
		out, report, err = e.archive(ctx, t, cmd, dir, progress)
	case events.ActionRestore:
		out, report, err = e.restore(ctx, t, from, dir, progress)
	case events.ActionCheck:
		out, report, err = e.check(ctx, t, cmd, from, dir)
	default:
		return phase.Failure(events.ReasonUnsupported, fmt.Errorf("backup does not %s", cmd.Action)), nil
	}
	if err != nil && ctx.Err() != nil {
		return phase.Outcome{}, ctx.Err()
	}
	if err != nil {
		return phase.Failure(reason(cmd.Action, err), err, report...), nil
	}
	return phase.Success(out, report...), nil
}

// From is the saga whose backup a restore or check command is about: the
// one a restore by hand names (events.Upgrade.Backup), else, and always for
// a compensation, the command's own.
func From(cmd events.Command) string {
	if cmd.Compensates == "" && cmd.Upgrade.Backup != "" {
		return cmd.Upgrade.Backup
	}
	return cmd.Saga
}

// Dir is where the backup of saga for t lives.
func Dir(t targets.Target, saga string) string { return filepath.Join(t.Backup.Dir, saga) }

// dir checks that saga is one path element. (No two targets share a backup
// directory: the registry refuses that when it is loaded.)
func (e *Executor) dir(t targets.Target, saga string) (string, error) {
	if saga == "" || saga == "." || saga == ".." || strings.ContainsAny(saga, `/\`) {
		return "", fmt.Errorf("%w: saga id %q cannot name a directory", ErrBadConfig, saga)
	}
	return Dir(t, saga), nil
}

func reason(action events.Action, err error) string {
	if action == events.ActionArchive && (errors.Is(err, ErrCorrupt) || errors.Is(err, pgdump.ErrCorrupt)) {
		return ReasonVerifyFailed
	}
	switch {
	case errors.Is(err, pgdump.ErrNoClient), errors.Is(err, pgdump.ErrClientTooOld):
		return ReasonDatabaseClient
	case errors.Is(err, pgdump.ErrCorrupt):
		return ReasonCorrupt
	case errors.Is(err, pgdump.ErrMismatch):
		return ReasonRestoreMismatch
	case errors.Is(err, pgdump.ErrDSN):
		return ReasonBadConfig
	}
	for _, r := range []struct {
		err    error
		reason string
	}{
		{ErrNothingInstalled, ReasonNothingInstalled}, {ErrUnsupportedFile, ReasonUnsupportedFile},
		{ErrNoBackup, ReasonNoBackup}, {ErrUnsafe, ReasonUnsafe}, {ErrCorrupt, ReasonCorrupt},
		{ErrBadConfig, ReasonBadConfig},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	if action == events.ActionRestore || action == events.ActionCheck {
		return ReasonRestoreFailed
	}
	if errors.Is(err, ErrDumpFailed) {
		return ReasonDumpFailed
	}
	return ReasonArchiveFailed
}
