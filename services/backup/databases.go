package backup

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/pgdump"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/targets"
)

// DatabaseDump is the backup of one of the target's databases, beside the
// file archive: the dump's file, digest and row counts (pgdump.Dump).
type DatabaseDump struct {
	// Name is the database's name in the targets file.
	Name string `json:"name"`
	pgdump.Dump
}

// dumpFile is the file name of a database's dump in a backup directory.
func dumpFile(name string) string { return "db-" + name + ".dump" }

// dumpAll dumps each of t's databases into dir and verifies each dump.
func dumpAll(ctx context.Context, tools pgdump.Tools, t targets.Target, dir string, progress phase.Progress) ([]DatabaseDump, []events.ReportLine, error) {
	var dumps []DatabaseDump
	var report []events.ReportLine
	for _, db := range t.Databases {
		progress("dumping database " + db.Name)
		dsn, err := db.DSN()
		if err != nil {
			err = fmt.Errorf("database %s: %w: %w", db.Name, ErrBadConfig, err)
			return nil, append(report, events.ReportLine{Name: "database " + db.Name, OK: false, Detail: err.Error()}), err
		}
		d, err := tools.Take(ctx, string(dsn), filepath.Join(dir, dumpFile(db.Name)))
		if err != nil {
			err = fmt.Errorf("database %s: %w: %w", db.Name, ErrDumpFailed, err)
			return nil, append(report, events.ReportLine{Name: "database " + db.Name, OK: false, Detail: err.Error()}), err
		}
		report = append(report, events.ReportLine{Name: "database " + db.Name, OK: true, Detail: fmt.Sprintf(
			"dump of %d tables, %d rows, %d bytes, PostgreSQL %s by %s", len(d.Tables), d.Rows(), d.Size, d.ServerVersion, d.Client)})
		dd := DatabaseDump{Name: db.Name, Dump: *d}
		progress("verifying the dump of " + db.Name)
		line, err := verifyDump(ctx, tools, dir, &dd)
		report = append(report, line)
		if err != nil {
			return nil, report, err
		}
		dumps = append(dumps, dd)
	}
	return dumps, report, nil
}

// verifyDump checks a dump's digest and has pg_restore read all of it.
func verifyDump(ctx context.Context, tools pgdump.Tools, dir string, d *DatabaseDump) (events.ReportLine, error) {
	n, err := tools.Verify(ctx, filepath.Join(dir, d.File), &d.Dump)
	if err != nil {
		err = fmt.Errorf("database %s: %w", d.Name, err)
		return events.ReportLine{Name: "database " + d.Name + " verification", OK: false, Detail: err.Error()}, err
	}
	d.Entries = n
	return events.ReportLine{Name: "database " + d.Name + " verification", OK: true, Detail: fmt.Sprintf(
		"sha256 %s matches; pg_restore read all %d entries", d.SHA256, n)}, nil
}

// sameDatabases reports whether m backs up exactly the databases t declares.
func sameDatabases(t targets.Target, m *Manifest) bool {
	var have, want []string
	for _, d := range m.Databases {
		have = append(have, d.Name)
	}
	for _, d := range t.Databases {
		want = append(want, d.Name)
	}
	return slices.Equal(have, want)
}

// checkDumps checks, before anything is touched, that every dump is of a
// database t declares and matches its digest.
func checkDumps(t targets.Target, dir string, m *Manifest) ([]events.ReportLine, error) {
	var report []events.ReportLine
	for _, d := range m.Databases {
		if _, ok := t.Database(d.Name); !ok {
			err := fmt.Errorf("%w: the backup holds database %s, which the target no longer declares", ErrBadConfig, d.Name)
			return append(report, events.ReportLine{Name: "database " + d.Name, OK: false, Detail: err.Error()}), err
		}
		if err := pgdump.Digest(filepath.Join(dir, d.File), &d.Dump); err != nil {
			err = fmt.Errorf("database %s: %w", d.Name, err)
			return append(report, events.ReportLine{Name: "database " + d.Name + " verification", OK: false, Detail: err.Error()}), err
		}
		report = append(report, events.ReportLine{Name: "database " + d.Name + " verification", OK: true,
			Detail: "sha256 " + d.SHA256 + " matches"})
	}
	return report, nil
}

// restoreDatabases restores every database of the backup, each proven by
// its row counts (pgdump.Restore); it goes on after a failure, so one bad
// database does not leave the others unrestored.
func restoreDatabases(ctx context.Context, tools pgdump.Tools, t targets.Target, dir string, m *Manifest, progress phase.Progress) ([]events.ReportLine, error) {
	var report []events.ReportLine
	var errs []error
	for _, d := range m.Databases {
		db, _ := t.Database(d.Name) // checkDumps made sure
		progress("restoring database " + d.Name)
		dsn, err := db.DSN()
		var r *pgdump.Restored
		if err == nil {
			r, err = tools.Restore(ctx, string(dsn), filepath.Join(dir, d.File), &d.Dump)
		}
		if err != nil {
			if ctx.Err() != nil {
				return report, ctx.Err()
			}
			err = fmt.Errorf("database %s not restored; a human must restore it from %s (docs/targets.md, restoring by hand): %w",
				d.Name, filepath.Join(dir, d.File), err)
			report = append(report, events.ReportLine{Name: "database " + d.Name, OK: false, Detail: err.Error()})
			errs = append(errs, err)
			continue
		}
		report = append(report, events.ReportLine{Name: "database " + d.Name, OK: true, Detail: fmt.Sprintf(
			"restored %d tables, %d rows in %s; every table's row count equals the backup's", r.Tables, r.Rows, r.Duration.Round(1e6))})
	}
	return report, errors.Join(errs...)
}
