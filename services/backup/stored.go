package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/targets"
)

// archive makes the backup in dir and, with a Store, moves it there; then
// retention removes the backups beyond the newest Keep of the target and
// software whose sagas have ended.
func (e *Executor) archive(ctx context.Context, t targets.Target, cmd events.Command, dir string, progress phase.Progress) (map[string]string, []events.ReportLine, error) {
	out, report, err := e.archiveStored(ctx, t, cmd, dir, progress)
	if err != nil {
		return out, report, err
	}
	// The backup a restore by hand is about to put back is kept too.
	removed, rerr := e.retain(ctx, t, &Manifest{Saga: cmd.Saga, Software: cmd.Upgrade.Software}, cmd.Upgrade.Backup)
	switch {
	case rerr != nil:
		// The backup is good; a failed clean-up is said, not fatal.
		report = append(report, events.ReportLine{Name: "retention", OK: false, Detail: rerr.Error()})
	case e.Keep > 0:
		detail := fmt.Sprintf("keeping the newest %d backups of %s on %s and those of sagas not over", e.Keep, cmd.Upgrade.Software, t.Name)
		if len(removed) > 0 {
			detail += "; removed those of " + strings.Join(removed, ", ")
		}
		report = append(report, events.ReportLine{Name: "retention", OK: true, Detail: detail})
	}
	return out, report, nil
}

func (e *Executor) archiveStored(ctx context.Context, t targets.Target, cmd events.Command, dir string, progress phase.Progress) (map[string]string, []events.ReportLine, error) {
	if e.Store == nil {
		return archive(ctx, e.Tools, t, cmd, dir, progress)
	}
	where := e.Store.Location(t.Name, cmd.Saga)
	progress("looking for an earlier backup in " + where)
	if m, err := e.Store.Manifest(ctx, t.Name, cmd.Saga); err == nil {
		if err := e.Store.Stored(ctx, m); err == nil {
			return output(where, m), []events.ReportLine{{Name: "archive", OK: true,
				Detail: "kept the backup made earlier for this saga at " + where + "; every object's digest matches"}}, nil
		}
	} else if !errors.Is(err, ErrNoBackup) {
		return nil, []events.ReportLine{{Name: "archive", OK: false, Detail: err.Error()}}, err
	}
	out, report, err := archive(ctx, e.Tools, t, cmd, dir, progress)
	if err != nil {
		return out, report, err
	}
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, report, err
	}
	m.Location = where
	progress("storing the backup in " + where)
	if err := e.Store.Upload(ctx, dir, m); err != nil {
		err = fmt.Errorf("store the backup of %s: %w", t.Name, err)
		return nil, append(report, events.ReportLine{Name: "store", OK: false, Detail: err.Error()}), err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, report, fmt.Errorf("remove the local copy: %w", err)
	}
	size := m.Archive.Size
	for _, d := range m.Databases {
		size += d.Size
	}
	report = append(report, events.ReportLine{Name: "store", OK: true, Detail: fmt.Sprintf(
		"%d files, %d bytes stored at %s; every object's digest matches the manifest", len(files(m)), size, where)})
	return output(where, m), report, nil
}

// restore restores from dir, after downloading the backup there from the
// Store if it is not on this host's disk; the download is removed once the
// restore succeeded, and kept for a human if it did not.
func (e *Executor) restore(ctx context.Context, t targets.Target, saga, dir string, progress phase.Progress) (map[string]string, []events.ReportLine, error) {
	if e.Store == nil {
		return restore(ctx, e.Tools, t, saga, dir, progress)
	}
	if _, err := ReadManifest(dir); errors.Is(err, ErrNoBackup) {
		where := e.Store.Location(t.Name, saga)
		progress("downloading the backup from " + where)
		if _, err := e.Store.Download(ctx, t.Name, saga, dir); err != nil {
			err = fmt.Errorf("restore %s: nothing was touched: %w", t.Name, err)
			return nil, []events.ReportLine{{Name: "backup", OK: false, Detail: err.Error()}}, err
		}
	}
	out, report, err := restore(ctx, e.Tools, t, saga, dir, progress)
	if err == nil {
		out["backup"] = e.Store.Location(t.Name, saga)
		os.RemoveAll(dir)
	}
	return out, report, err
}
