package backup

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/targets"
)

// check is a restore by hand's precheck of the backup it names (the backup
// of saga from, in dir or in the Store): that it is there, is of this target
// and of the request's software, and that every file's digest matches its
// manifest, so the saga fails before it changes anything rather than after
// its safety backup. It looks where restore will: the host's copy if there
// is one, else the Store, whose objects' own digests are compared without
// a download (restore checks every byte again before it touches anything).
func (e *Executor) check(ctx context.Context, t targets.Target, cmd events.Command, from, dir string) (map[string]string, []events.ReportLine, error) {
	m, where, err := e.find(ctx, t, from, dir)
	if err == nil && m.Software != cmd.Upgrade.Software {
		err = fmt.Errorf("%w of %s: the backup of saga %s on %s is of %s", ErrNoBackup, cmd.Upgrade.Software, from, t.Name, m.Software)
	}
	if err != nil {
		err = fmt.Errorf("backup of saga %s on %s: %w", from, t.Name, err)
		return nil, []events.ReportLine{{Name: "backup", OK: false, Detail: err.Error()}}, err
	}
	report := []events.ReportLine{{Name: "backup", OK: true, Detail: fmt.Sprintf(
		"the backup of saga %s at %s: %s %s, %d entries, %d databases, made %s; every digest matches",
		from, where, m.Software, m.Version, len(m.Entries), len(m.Databases), m.Created.UTC().Format("2006-01-02T15:04:05Z"))}}
	return output(where, m), report, nil
}

// find reads and checks the manifest of the backup of saga from.
func (e *Executor) find(ctx context.Context, t targets.Target, from, dir string) (*Manifest, string, error) {
	m, err := ReadManifest(dir)
	if errors.Is(err, ErrNoBackup) && e.Store != nil {
		where := e.Store.Location(t.Name, from)
		m, err = e.Store.Manifest(ctx, t.Name, from)
		if err == nil {
			err = m.check(from, t.Name)
		}
		if err == nil {
			err = e.Store.Stored(ctx, m)
		}
		return m, where, err
	}
	if err == nil {
		err = m.check(from, t.Name)
	}
	if err == nil {
		err = outsideBackups(t, m)
	}
	if err == nil {
		err = verify(ctx, filepath.Join(dir, ArchiveFile), m)
	}
	if err == nil {
		_, err = checkDumps(t, dir, m)
	}
	return m, dir, err
}
