package deploy

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxLinkHops bounds the links followed while resolving one link, as the
// kernel's own limit does.
const maxLinkHops = 40

// extracted is what an extraction wrote.
type extracted struct {
	entries  int
	bytes    int64
	links    int
	stripped int // entries whose setuid, setgid or sticky bit was dropped
}

// extract unpacks the .tar.gz at pkg into a new temporary directory inside
// releases and returns it; the caller renames it into place. On any error
// nothing is left behind. Every write goes through an os.Root, so even a
// case the checks below missed cannot write outside the directory.
func extract(ctx context.Context, pkg, releases, version string, maxSize int64, maxFiles int) (dir string, st extracted, err error) {
	tmp, err := os.MkdirTemp(releases, ".tmp-"+version+"-")
	if err != nil {
		return "", st, fmt.Errorf("extract: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return "", st, fmt.Errorf("extract: %w", err)
	}
	defer root.Close()
	f, err := os.Open(pkg)
	if err != nil {
		return "", st, fmt.Errorf("extract: %w", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return "", st, fmt.Errorf("%w: %s is not gzip: %v", ErrBadPackage, filepath.Base(pkg), err)
	}
	x := &extractor{root: root, maxSize: maxSize, maxFiles: maxFiles, dirs: map[string]fs.FileMode{}}
	tr := tar.NewReader(gz)
	for {
		if err := ctx.Err(); err != nil {
			return "", st, fmt.Errorf("extract: %w", err)
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, tar.ErrInsecurePath) {
			return "", st, fmt.Errorf("%w: %q: %v", ErrUnsafePackage, hdr.Name, err)
		}
		if err != nil {
			return "", st, fmt.Errorf("%w: reading the archive: %v", ErrBadPackage, err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return "", st, err
		}
	}
	if err := x.finish(); err != nil {
		return "", st, err
	}
	// MkdirTemp made it private; a release is read by the app's own user.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", st, fmt.Errorf("extract: %w", err)
	}
	return tmp, x.st, nil
}

type extractor struct {
	root     *os.Root
	maxSize  int64
	maxFiles int
	st       extracted
	dirs     map[string]fs.FileMode // modes applied last, once the directories are filled
	symlinks []string
}

func unsafe(name, format string, args ...any) error {
	return fmt.Errorf("%w: %q: %s", ErrUnsafePackage, name, fmt.Sprintf(format, args...))
}

func (x *extractor) entry(hdr *tar.Header, body io.Reader) error {
	x.st.entries++
	if x.st.entries > x.maxFiles {
		return fmt.Errorf("%w: more than %d entries", ErrUnsafePackage, x.maxFiles)
	}
	name, err := entryName(hdr.Name)
	if err != nil || name == "" {
		return err
	}
	if err := x.checkParents(name); err != nil {
		return err
	}
	mode := fs.FileMode(hdr.Mode) & fs.ModePerm
	if hdr.Mode&0o7000 != 0 {
		x.st.stripped++
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if fi, err := x.root.Lstat(name); err == nil && !fi.IsDir() {
			return unsafe(name, "a directory over a file or link")
		}
		if err := x.root.MkdirAll(name, 0o700); err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
		x.dirs[name] = mode | 0o700 // the owner must be able to clean it up
		return nil
	case tar.TypeReg:
		x.st.bytes += hdr.Size
		if x.st.bytes > x.maxSize {
			return fmt.Errorf("%w: more than %d bytes uncompressed", ErrUnsafePackage, x.maxSize)
		}
		if err := x.clear(name); err != nil {
			return err
		}
		return x.file(name, mode, body)
	case tar.TypeSymlink:
		if hdr.Linkname == "" || path.IsAbs(hdr.Linkname) {
			return unsafe(name, "link to %q, outside the release", hdr.Linkname)
		}
		if to := path.Join(path.Dir(name), hdr.Linkname); !filepath.IsLocal(to) {
			return unsafe(name, "link to %q, outside the release", hdr.Linkname)
		}
		if err := x.clear(name); err != nil {
			return err
		}
		if err := x.root.Symlink(hdr.Linkname, name); err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
		x.st.links++
		x.symlinks = append(x.symlinks, name)
		return nil
	case tar.TypeLink:
		return unsafe(name, "hard link to %q", hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		return unsafe(name, "device node")
	case tar.TypeFifo:
		return unsafe(name, "fifo")
	}
	return unsafe(name, "unsupported entry type %q", hdr.Typeflag)
}

// entryName checks a name from the archive and returns it cleaned; "" is the
// release directory itself.
func entryName(raw string) (string, error) {
	if raw == "" {
		return "", unsafe(raw, "empty name")
	}
	if path.IsAbs(raw) {
		return "", unsafe(raw, "absolute path")
	}
	if !filepath.IsLocal(raw) {
		return "", unsafe(raw, "escapes the release")
	}
	name := path.Clean(raw)
	if name == "." {
		return "", nil
	}
	if name == MarkerFile {
		return "", unsafe(raw, "reserved for the release marker")
	}
	return name, nil
}

// checkParents refuses a path through a link (or a file): the simple rule
// that makes every other check here hold, since links can then only be
// followed when resolving a link, which finish does.
func (x *extractor) checkParents(name string) error {
	parts := strings.Split(name, "/")
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], "/")
		fi, err := x.root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
		if !fi.IsDir() {
			return unsafe(name, "path through %q, which is not a directory", p)
		}
	}
	return nil
}

// clear makes room for a later entry of the same name (tar appends), but
// never replaces a directory with something else.
func (x *extractor) clear(name string) error {
	fi, err := x.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		if dir := path.Dir(name); dir != "." {
			if err := x.root.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	if fi.IsDir() {
		return unsafe(name, "a file or link over a directory")
	}
	if err := x.root.Remove(name); err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	return nil
}

func (x *extractor) file(name string, mode fs.FileMode, body io.Reader) error {
	w, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	defer w.Close()
	if _, err := io.Copy(w, body); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: %s is truncated", ErrBadPackage, name)
		}
		return fmt.Errorf("extract %s: %w", name, err)
	}
	// Chmod on the open file: the archive's mode, less the special bits,
	// whatever the umask.
	if err := w.Chmod(mode); err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	// The release is switched to soon after: its content must be on disk.
	if err := w.Sync(); err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	return w.Close()
}

// finish checks every link against the final tree (an earlier link may send
// a later one's "a/.." out), then applies the directories' modes.
func (x *extractor) finish() error {
	for _, name := range x.symlinks {
		if err := x.resolve(name); err != nil {
			return err
		}
	}
	for dir, mode := range x.dirs {
		if err := x.root.Chmod(dir, mode); err != nil {
			return fmt.Errorf("extract %s: %w", dir, err)
		}
	}
	return nil
}

// resolve follows the link at name through the release, component by
// component and through other links, and refuses it if it ever leaves the
// release. Components that do not exist are taken as plain directories: the
// app may create them, and may then only create them inside.
func (x *extractor) resolve(name string) error {
	target, err := x.root.Readlink(name)
	if err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	dir := strings.Split(path.Dir(name), "/")
	if dir[0] == "." {
		dir = nil
	}
	pending := strings.Split(target, "/")
	for hops := 0; len(pending) > 0; {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(dir) == 0 {
				return unsafe(name, "link to %q resolves outside the release", target)
			}
			dir = dir[:len(dir)-1]
			continue
		}
		p := strings.Join(append(dir[:len(dir):len(dir)], c), "/")
		fi, err := x.root.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			dir = append(dir, c)
			continue
		}
		if hops++; hops > maxLinkHops {
			return unsafe(name, "too many levels of links")
		}
		next, err := x.root.Readlink(p)
		if err != nil {
			return fmt.Errorf("extract %s: %w", p, err)
		}
		if path.IsAbs(next) {
			return unsafe(name, "link to %q goes through %q, which points outside the release", target, p)
		}
		pending = append(strings.Split(next, "/"), pending...)
	}
	return nil
}
