package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"time"
)

// ManifestFormat is the version of the manifest layout this build writes;
// it reads this one and the ones before (format 1 had no databases).
const ManifestFormat = 2

// Manifest describes one verified backup.
type Manifest struct {
	Format int    `json:"format"`
	Saga   string `json:"saga"`
	Target string `json:"target"`
	// Software the saga was about, for retention (per target and software).
	Software string `json:"software,omitempty"`
	Version  string `json:"version"`
	// Location is where the backup is kept: the backup directory on the
	// target's host, or objectstore://BUCKET/<target>/<saga>/.
	Location string    `json:"location,omitempty"`
	Created  time.Time `json:"created"`
	// Root is the target root the paths are relative to, for the reader.
	Root string `json:"root"`
	// Paths are the backed-up trees, relative to the root: the release
	// first, then each configured path that existed.
	Paths   []string `json:"paths"`
	Archive Archive  `json:"archive"`
	// Entries in archive order: a directory before what it holds.
	Entries []Entry `json:"entries"`
	// Skip are files inside the backed-up trees that the backup leaves
	// out and a restore leaves as they are: the live log, which the
	// application keeps open and writes on (a restore replacing it would
	// leave it writing to a file no longer there).
	Skip []string `json:"skip,omitempty"`
	// Databases: one dump of each database the target declares.
	Databases []DatabaseDump `json:"databases,omitempty"`
}

// Archive identifies the archive file.
type Archive struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Entry types.
const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
)

// Entry is one backed-up file, directory or symbolic link.
type Entry struct {
	// Path relative to the root, slash-separated.
	Path string `json:"path"`
	Type string `json:"type"`
	Mode Mode   `json:"mode"`
	// Size and SHA256 of a file's content.
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Link is a symbolic link's target, as it was written.
	Link string `json:"link,omitempty"`
}

// Mode is the permission bits with setuid, setgid and sticky, as in
// chmod(1); it is written in octal ("0755") for people reading the manifest.
type Mode uint32

func modeOf(m fs.FileMode) Mode {
	u := Mode(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// FileMode converts m for os.Chmod.
func (m Mode) FileMode() fs.FileMode {
	f := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		f |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		f |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		f |= fs.ModeSticky
	}
	return f
}

// MarshalJSON implements json.Marshaler.
func (m Mode) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf(`"%04o"`, uint32(m))), nil }

// UnmarshalJSON implements json.Unmarshaler.
func (m *Mode) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("mode %s: %w", b, err)
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return fmt.Errorf("mode %s: want octal permission bits", b)
	}
	*m = Mode(v)
	return nil
}

// ReadManifest reads the manifest of the backup in dir. A missing manifest
// is ErrNoBackup (a backup that did not complete has none); one that cannot
// be read is ErrCorrupt.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNoBackup, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return decodeManifest(b, dir)
}

// decodeManifest reads a manifest found at where.
func decodeManifest(b []byte, where string) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest %s: %w", ErrCorrupt, where, err)
	}
	if m.Format < 1 || m.Format > ManifestFormat {
		return nil, fmt.Errorf("%w: manifest %s has format %d, this build reads 1 to %d", ErrCorrupt, where, m.Format, ManifestFormat)
	}
	return &m, nil
}

// writeManifest writes to a temporary file, syncs it, renames it into place
// and syncs the directory: a reader sees no manifest or a whole one, even
// after a crash.
func writeManifest(dir string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	f, err := os.CreateTemp(dir, ".manifest-*")
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync manifest: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, ManifestFile)); err != nil {
		return fmt.Errorf("install manifest: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes the names created or renamed in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// local reports whether p is a clean, relative, slash-separated path that
// stays below the root.
func local(p string) bool {
	return p != "" && p != "." && path.Clean(p) == p && filepath.IsLocal(filepath.FromSlash(p))
}

// within reports whether p is dir or below it (both slash-separated, clean).
func within(p, dir string) bool {
	return p == dir || len(p) > len(dir) && p[:len(dir)] == dir && p[len(dir)] == '/'
}

// check refuses a manifest that could make restore write outside the
// backed-up paths: every path must be local, every entry inside one backed-up
// tree, and every entry but a tree's top below a directory entry that comes
// before it, so restore never goes through a link it did not make.
func (m *Manifest) check(saga, target string) error {
	if m.Saga != saga || m.Target != target {
		return fmt.Errorf("%w: manifest is of saga %q target %q", ErrCorrupt, m.Saga, m.Target)
	}
	for i, p := range m.Paths {
		if !local(p) {
			return fmt.Errorf("%w: backed-up path %q", ErrUnsafe, p)
		}
		for _, q := range m.Paths[:i] {
			if within(p, q) || within(q, p) {
				return fmt.Errorf("%w: backed-up paths %q and %q overlap", ErrUnsafe, q, p)
			}
		}
	}
	for _, p := range m.Skip {
		if !local(p) {
			return fmt.Errorf("%w: skipped path %q", ErrUnsafe, p)
		}
	}
	seen := map[string]string{}
	for _, e := range m.Entries {
		if !local(e.Path) {
			return fmt.Errorf("%w: %q is absolute or leaves the root", ErrUnsafe, e.Path)
		}
		if _, dup := seen[e.Path]; dup {
			return fmt.Errorf("%w: %q appears twice", ErrUnsafe, e.Path)
		}
		top := false
		for _, p := range m.Paths {
			top = top || e.Path == p
		}
		if !top && seen[path.Dir(e.Path)] != TypeDir {
			return fmt.Errorf("%w: %q is not inside a backed-up directory", ErrUnsafe, e.Path)
		}
		switch e.Type {
		case TypeFile, TypeDir, TypeSymlink:
		default:
			return fmt.Errorf("%w: %q has type %q", ErrUnsafe, e.Path, e.Type)
		}
		seen[e.Path] = e.Type
	}
	for _, p := range m.Paths {
		if _, ok := seen[p]; !ok {
			return fmt.Errorf("%w: backed-up path %q has no entry", ErrCorrupt, p)
		}
	}
	for _, d := range m.Databases {
		if d.File != dumpFile(d.Name) {
			return fmt.Errorf("%w: database %q has its dump in %q", ErrUnsafe, d.Name, d.File)
		}
	}
	return nil
}
