package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/pgdump"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/targets"
)

// archive backs up t's current release and configured paths into dir,
// unless dir already holds a backup that verifies.
func archive(ctx context.Context, tools pgdump.Tools, t targets.Target, cmd events.Command, dir string, progress phase.Progress) (map[string]string, []events.ReportLine, error) {
	file := filepath.Join(dir, ArchiveFile)
	progress("looking for an earlier backup")
	if m, err := ReadManifest(dir); err == nil {
		if m.Target != t.Name {
			return nil, nil, fmt.Errorf("%w: %s holds a backup of target %s", ErrBadConfig, dir, m.Target)
		}
		verr := verify(ctx, file, m)
		report := []events.ReportLine{
			{Name: "archive", OK: true, Detail: "kept the backup made earlier for this saga at " + dir}, verified(m)}
		if verr == nil && !sameDatabases(t, m) {
			verr = errors.New("it does not hold the databases the target declares")
		}
		for i := 0; verr == nil && i < len(m.Databases); i++ {
			var line events.ReportLine
			line, verr = verifyDump(ctx, tools, dir, &m.Databases[i])
			report = append(report, line)
		}
		if verr == nil {
			return output(dir, m), report, nil
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		// An earlier backup that no longer verifies is worth nothing: make
		// a new one.
		progress("earlier backup does not verify, archiving again: " + verr.Error())
	}

	progress("resolving the current release")
	skip, err := coverMaintenance(&t, cmd)
	if err != nil {
		return nil, []events.ReportLine{{Name: "archive", OK: false, Detail: err.Error()}}, discard(dir, err)
	}
	version, paths, absent, err := plan(t)
	if err != nil {
		return nil, []events.ReportLine{{Name: "archive", OK: false, Detail: err.Error()}}, discard(dir, err)
	}
	m, report, err := create(ctx, tools, t, cmd, dir, version, paths, skip, progress)
	if err != nil {
		return nil, report, discard(dir, err)
	}
	if len(absent) > 0 {
		report[0].Detail += "; not present, so not backed up: " + strings.Join(absent, ", ")
	}
	return output(dir, m), report, nil
}

// discard removes what a failed archive left in dir, so that no partial
// backup is ever taken for one.
func discard(dir string, cause error) error {
	if err := os.RemoveAll(dir); err != nil {
		return errors.Join(cause, fmt.Errorf("discard partial backup: %w", err))
	}
	return cause
}

// create writes, verifies and commits a new backup. The caller discards dir
// if it fails.
func create(ctx context.Context, tools pgdump.Tools, t targets.Target, cmd events.Command, dir, version string, paths, skip []string, progress phase.Progress) (*Manifest, []events.ReportLine, error) {
	fail := func(name string, err error) (*Manifest, []events.ReportLine, error) {
		return nil, []events.ReportLine{{Name: name, OK: false, Detail: err.Error()}}, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fail("archive", fmt.Errorf("clear %s: %w", dir, err))
	}
	if err := os.MkdirAll(t.Backup.Dir, 0o750); err != nil {
		return fail("archive", fmt.Errorf("create backup dir: %w", err))
	}
	// Backups hold configuration, which may hold secrets.
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fail("archive", fmt.Errorf("create backup dir: %w", err))
	}
	file := filepath.Join(dir, ArchiveFile)
	entries, arch, err := write(ctx, t.Root, file, paths, skip, progress)
	if err != nil {
		return fail("archive", fmt.Errorf("archive %s: %w", t.Name, err))
	}
	m := &Manifest{Format: ManifestFormat, Saga: cmd.Saga, Target: t.Name, Software: cmd.Upgrade.Software, Version: version, Location: dir,
		Created: time.Now().UTC(), Root: t.Root, Paths: paths, Skip: skip, Archive: arch, Entries: entries}
	archived := events.ReportLine{Name: "archive", OK: true, Detail: fmt.Sprintf("%d entries of %s, %d bytes, at %s",
		len(entries), strings.Join(paths, ", "), arch.Size, file)}

	progress("verifying " + file)
	if err := verify(ctx, file, m); err != nil {
		return nil, []events.ReportLine{archived, {Name: "verification", OK: false, Detail: err.Error()}},
			fmt.Errorf("verify backup of %s: %w", t.Name, err)
	}
	report := []events.ReportLine{archived, verified(m)}
	dumps, lines, err := dumpAll(ctx, tools, t, dir, progress)
	report = append(report, lines...)
	if err != nil {
		return nil, report, fmt.Errorf("backup %s: %w", t.Name, err)
	}
	m.Databases = dumps
	progress("writing the manifest")
	if err := writeManifest(dir, m); err != nil {
		return nil, report, fmt.Errorf("backup %s: %w", t.Name, err)
	}
	if err := syncDir(t.Backup.Dir); err != nil {
		return nil, report, fmt.Errorf("backup %s: %w", t.Name, err)
	}
	return m, report, nil
}

// coverMaintenance adds to what t backs up what a maintenance run's
// archive-logs changes: the log directories and the archive, created first
// if missing, so that a restore also takes back what it moved there. The
// live log is skipped (Manifest.Skip).
func coverMaintenance(t *targets.Target, cmd events.Command) ([]string, error) {
	if cmd.Upgrade.Kind != string(spec.KindMaintenance) || !slices.Contains(cmd.Upgrade.Actions, spec.ActionArchiveLogs) {
		return nil, nil
	}
	paths, live := t.LogPaths()
	if len(paths) == 0 {
		return nil, nil // deploy will say that archive-logs is not configured
	}
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Join(t.Root, p), 0o750); err != nil {
			return nil, fmt.Errorf("create %s: %w", p, err)
		}
	}
	t.Backup.Paths = append(slices.Clone(t.Backup.Paths), paths...)
	return []string{live}, nil
}

// plan resolves what to back up: the release current points at, then each
// configured path that exists (absent lists those that do not).
func plan(t targets.Target) (version string, paths, absent []string, err error) {
	dest, err := os.Readlink(t.Current())
	if errors.Is(err, os.ErrNotExist) {
		return "", nil, nil, fmt.Errorf("%w: no current link at %s", ErrNothingInstalled, t.Current())
	}
	if err != nil {
		return "", nil, nil, fmt.Errorf("%w: %s is not a link to a release: %w", ErrBadConfig, t.Current(), err)
	}
	if !filepath.IsAbs(dest) {
		dest = filepath.Join(t.Root, dest)
	}
	version, err = filepath.Rel(t.Releases(), filepath.Clean(dest))
	if err != nil || !filepath.IsLocal(version) || strings.ContainsRune(version, filepath.Separator) {
		return "", nil, nil, fmt.Errorf("%w: current points at %s, not at a release under %s", ErrBadConfig, dest, t.Releases())
	}
	if fi, err := os.Lstat(dest); errors.Is(err, os.ErrNotExist) {
		return "", nil, nil, fmt.Errorf("%w: current points at %s, which does not exist", ErrNothingInstalled, dest)
	} else if err != nil {
		return "", nil, nil, fmt.Errorf("inspect current release: %w", err)
	} else if !fi.IsDir() {
		return "", nil, nil, fmt.Errorf("%w: current release %s is not a directory", ErrBadConfig, dest)
	}

	// Paths managed by the deploy service, or holding the backups, cannot
	// also be configuration to back up.
	release := "releases/" + filepath.ToSlash(version)
	reserved := []string{"releases", "current"}
	if rel, err := filepath.Rel(t.Root, t.Backup.Dir); err == nil && filepath.IsLocal(rel) {
		if b := filepath.ToSlash(rel); within(b, release) || within(b, "current") {
			return "", nil, nil, fmt.Errorf("%w: backup dir %s is inside the release it backs up", ErrBadConfig, t.Backup.Dir)
		}
		reserved = append(reserved, filepath.ToSlash(rel))
	}
	var extra []string
	for _, p := range t.Backup.Paths {
		c := path.Clean(filepath.ToSlash(p))
		if !local(c) {
			return "", nil, nil, fmt.Errorf("%w: backup path %q must be relative and stay under the root", ErrBadConfig, p)
		}
		for _, r := range reserved {
			if within(c, r) || within(r, c) {
				return "", nil, nil, fmt.Errorf("%w: backup path %q overlaps %s", ErrBadConfig, p, r)
			}
		}
		extra = append(extra, c)
	}
	sort.Strings(extra)
	paths = []string{release}
next:
	for _, p := range extra {
		for _, q := range paths {
			if within(p, q) {
				continue next // already inside a configured path
			}
		}
		if _, err := os.Lstat(filepath.Join(t.Root, filepath.FromSlash(p))); errors.Is(err, os.ErrNotExist) {
			absent = append(absent, p)
			continue
		} else if err != nil {
			return "", nil, nil, fmt.Errorf("inspect backup path %s: %w", p, err)
		}
		paths = append(paths, p)
	}
	return version, paths, absent, nil
}

func output(dir string, m *Manifest) map[string]string {
	out := map[string]string{
		"backup": dir, "archive_sha256": m.Archive.SHA256, "version": m.Version,
		"entries": strconv.Itoa(len(m.Entries)), "bytes": strconv.FormatInt(m.Archive.Size, 10),
	}
	if len(m.Databases) > 0 {
		out["databases"] = strconv.Itoa(len(m.Databases))
	}
	return out
}

func verified(m *Manifest) events.ReportLine {
	return events.ReportLine{Name: "verification", OK: true, Detail: fmt.Sprintf(
		"archive sha256 %s and all %d entries match the manifest", m.Archive.SHA256, len(m.Entries))}
}
