package backup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/pgdump"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/targets"
)

// restore brings the paths backed up in dir, the backup of saga, back to
// their manifest.
func restore(ctx context.Context, tools pgdump.Tools, t targets.Target, saga, dir string, progress phase.Progress) (map[string]string, []events.ReportLine, error) {
	file := filepath.Join(dir, ArchiveFile)
	progress("reading the manifest in " + dir)
	m, err := ReadManifest(dir)
	if err == nil {
		err = m.check(saga, t.Name)
	}
	if err == nil {
		err = outsideBackups(t, m)
	}
	if err != nil {
		return nil, []events.ReportLine{{Name: "backup", OK: false, Detail: err.Error()}}, fmt.Errorf("restore %s: %w", t.Name, err)
	}
	// Never restore from a damaged backup: check all of it before touching
	// anything.
	progress("verifying " + file)
	if err := verify(ctx, file, m); err != nil {
		return nil, []events.ReportLine{{Name: "verification", OK: false, Detail: err.Error()}}, fmt.Errorf("restore %s: %w", t.Name, err)
	}
	report := []events.ReportLine{verified(m)}
	lines, err := checkDumps(t, dir, m)
	report = append(report, lines...)
	if err != nil {
		return nil, report, fmt.Errorf("restore %s: nothing was touched; a human must restore it from another backup than %s: %w", t.Name, dir, err)
	}
	progress(fmt.Sprintf("restoring %d entries of %s", len(m.Entries), strings.Join(m.Paths, ", ")))
	r := &restorer{root: t.Root, backups: filepath.Clean(t.Backup.Dir), m: m, synced: map[string]bool{}}
	err = r.run(ctx, file)
	line := events.ReportLine{Name: "restore", OK: err == nil, Detail: fmt.Sprintf(
		"version %s: %d restored, %d unchanged, %d removed", m.Version, r.restored, r.unchanged, r.removed)}
	if err != nil {
		line.Detail += ": " + err.Error()
	}
	report = append(report, line)
	ferr := err
	// The databases are restored even if the files could not be: each is
	// worth having back.
	lines, derr := restoreDatabases(ctx, tools, t, dir, m, progress)
	report = append(report, lines...)
	if ctx.Err() != nil {
		return nil, report, ctx.Err()
	}
	if err := errors.Join(ferr, derr); err != nil {
		return nil, report, fmt.Errorf("restore %s: %w", t.Name, err)
	}
	out := map[string]string{
		"backup": dir, "version": m.Version, "restored": strconv.Itoa(r.restored),
		"unchanged": strconv.Itoa(r.unchanged), "removed": strconv.Itoa(r.removed),
	}
	if len(m.Databases) > 0 {
		out["databases"] = strconv.Itoa(len(m.Databases))
	}
	return out, report, nil
}

// outsideBackups refuses a manifest whose trees hold or sit inside the backup
// directory: restoring it would delete the backups as strays.
func outsideBackups(t targets.Target, m *Manifest) error {
	rel, err := filepath.Rel(t.Root, t.Backup.Dir)
	if err != nil || !filepath.IsLocal(rel) {
		return nil
	}
	for _, p := range m.Paths {
		if b := filepath.ToSlash(rel); within(p, b) || within(b, p) {
			return fmt.Errorf("%w: backed-up path %q overlaps the backup dir", ErrUnsafe, p)
		}
	}
	return nil
}

type restorer struct {
	root    string
	backups string
	m       *Manifest
	// modes of directories, set last so a read-only one can be filled first.
	modes  []dirMode
	synced map[string]bool

	restored, unchanged, removed int
}

type dirMode struct {
	path string
	mode Mode
}

func (r *restorer) abs(p string) string { return filepath.Join(r.root, filepath.FromSlash(p)) }

func (r *restorer) run(ctx context.Context, file string) error {
	for _, p := range r.m.Paths {
		// The directories holding a backed-up tree are not part of it:
		// only create them if missing.
		if err := os.MkdirAll(filepath.Dir(r.abs(p)), 0o755); err != nil {
			return fmt.Errorf("create parent of %s: %w", p, err)
		}
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	tr := tar.NewReader(gz)
	for _, e := range r.m.Entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err != nil {
			return fmt.Errorf("%w: reading %s: %w", ErrCorrupt, e.Path, err)
		}
		got, err := entryOf(hdr)
		if err != nil {
			return err
		}
		if got.SHA256 = e.SHA256; got != e {
			return fmt.Errorf("%w: archive has %s where the manifest has %s", ErrCorrupt, got.Path, e.Path)
		}
		if err := r.entry(e, tr, hdr.ModTime); err != nil {
			return fmt.Errorf("restore %s: %w", e.Path, err)
		}
	}
	if err := r.strays(ctx); err != nil {
		return err
	}
	for i := len(r.modes) - 1; i >= 0; i-- {
		if err := os.Chmod(r.modes[i].path, r.modes[i].mode.FileMode()); err != nil {
			return fmt.Errorf("restore mode: %w", err)
		}
	}
	for d := range r.synced {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// entry brings one path back to e. Nothing is ever written through a link:
// a link or file where a directory belongs is replaced, and what lies below
// a backed-up directory was checked to be a directory first.
func (r *restorer) entry(e Entry, content io.Reader, mtime time.Time) error {
	p := r.abs(e.Path)
	fi, err := os.Lstat(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	exists := err == nil
	switch e.Type {
	case TypeDir:
		if exists && fi.IsDir() {
			if modeOf(fi.Mode()) == e.Mode {
				r.unchanged++
				return nil
			}
		} else {
			if exists {
				if err := os.Remove(p); err != nil {
					return err
				}
			}
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
			r.synced[filepath.Dir(p)] = true
		}
		r.modes = append(r.modes, dirMode{p, e.Mode})
		r.restored++
		return nil
	case TypeSymlink:
		if exists && fi.Mode()&fs.ModeSymlink != 0 {
			if l, err := os.Readlink(p); err == nil && l == e.Link {
				r.unchanged++
				return nil
			}
		}
		if err := r.replace(p, fi, func(tmp string) error { return os.Symlink(e.Link, tmp) }); err != nil {
			return err
		}
		r.restored++
		return nil
	}
	if exists && fi.Mode().IsRegular() && modeOf(fi.Mode()) == e.Mode && fi.Size() == e.Size {
		if sum, err := hashFile(p); err == nil && sum == e.SHA256 {
			r.unchanged++
			return nil
		}
	}
	if err := r.replace(p, fi, func(tmp string) error { return extract(tmp, content, e, mtime) }); err != nil {
		return err
	}
	r.restored++
	return nil
}

// replace makes the new entry under a temporary name beside p, then renames
// it over p: a program that has the old file open, or is running it, keeps
// it, and a reader of p sees the old or the new, never half of one.
func (r *restorer) replace(p string, old fs.FileInfo, build func(tmp string) error) error {
	tmp := filepath.Join(filepath.Dir(p), ".upshift-restore-"+rand.Text())
	if err := build(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	if old != nil && old.IsDir() {
		// A directory cannot be renamed over; it is in the way, and not in
		// the backup.
		r.removed += count(p)
		if err := os.RemoveAll(p); err != nil {
			os.Remove(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	r.synced[filepath.Dir(p)] = true
	return nil
}

// extract writes a file's content to tmp, checks it against the manifest
// and syncs it.
func extract(tmp string, content io.Reader, e Entry, mtime time.Time) error {
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	sum := &digest{h: sha256.New()}
	if _, err := io.Copy(io.MultiWriter(f, sum), content); err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if got := sum.String(); got != e.SHA256 || sum.n != e.Size {
		return fmt.Errorf("%w: extracted %d bytes with sha256 %s, the manifest says %d and %s", ErrCorrupt, sum.n, got, e.Size, e.SHA256)
	}
	if err := f.Chmod(e.Mode.FileMode()); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chtimes(tmp, mtime, mtime)
}

// strays removes what is inside a backed-up directory but not in the
// backup: what the failed deploy added, or an interrupted restore left.
func (r *restorer) strays(ctx context.Context) error {
	known := make(map[string]bool, len(r.m.Entries))
	for _, e := range r.m.Entries {
		known[e.Path] = true
	}
	for _, e := range r.m.Entries {
		if e.Type != TypeDir {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		des, err := os.ReadDir(r.abs(e.Path))
		if err != nil {
			return fmt.Errorf("list %s: %w", e.Path, err)
		}
		for _, de := range des {
			p := r.abs(e.Path + "/" + de.Name())
			if known[e.Path+"/"+de.Name()] || r.protected(p) || slices.Contains(r.m.Skip, e.Path+"/"+de.Name()) {
				continue
			}
			r.removed += count(p)
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("remove %s: %w", p, err)
			}
			r.synced[r.abs(e.Path)] = true
		}
	}
	return nil
}

// protected reports whether removing p would remove the backups.
func (r *restorer) protected(p string) bool {
	p = filepath.ToSlash(p)
	b := filepath.ToSlash(r.backups)
	return within(b, p)
}

// count is how many entries removing p removes.
func count(p string) int {
	n := 0
	filepath.WalkDir(p, func(string, fs.DirEntry, error) error { n++; return nil })
	return n
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sum := &digest{h: sha256.New()}
	if _, err := io.Copy(sum, f); err != nil {
		return "", err
	}
	return sum.String(), nil
}
