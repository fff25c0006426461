package backup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/upshift/upshift/pkg/phase"
)

// write archives the trees paths (relative to root) into file, but the
// files skip names, and returns the entries as the manifest lists them.
// Links are stored, not followed.
func write(ctx context.Context, root, file string, paths, skip []string, progress phase.Progress) ([]Entry, Archive, error) {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, Archive{}, fmt.Errorf("create archive: %w", err)
	}
	defer f.Close()
	sum := &digest{h: sha256.New()}
	gz := gzip.NewWriter(io.MultiWriter(f, sum))
	tw := tar.NewWriter(gz)
	var entries []Entry
	for _, p := range paths {
		progress("archiving " + p)
		top := filepath.Join(root, filepath.FromSlash(p))
		err := filepath.WalkDir(top, func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			rel, err := filepath.Rel(root, name)
			if err != nil {
				return err
			}
			if slices.Contains(skip, filepath.ToSlash(rel)) && !d.IsDir() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			e, err := add(tw, name, filepath.ToSlash(rel), info)
			if err != nil {
				return fmt.Errorf("archive %s: %w", name, err)
			}
			entries = append(entries, e)
			return nil
		})
		if err != nil {
			return nil, Archive{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, Archive{}, fmt.Errorf("finish archive: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, Archive{}, fmt.Errorf("finish archive: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, Archive{}, fmt.Errorf("sync archive: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, Archive{}, fmt.Errorf("close archive: %w", err)
	}
	return entries, Archive{File: ArchiveFile, SHA256: sum.String(), Size: sum.n}, nil
}

// add writes one entry; the manifest's record of it is derived from the
// header written, so archive and manifest cannot disagree by construction.
func add(tw *tar.Writer, name, rel string, info fs.FileInfo) (Entry, error) {
	link := ""
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		l, err := os.Readlink(name)
		if err != nil {
			return Entry{}, err
		}
		link = l
	case info.Mode().IsRegular(), info.IsDir():
	default:
		return Entry{}, fmt.Errorf("%w: %s (only files, directories and links are backed up)", ErrUnsupportedFile, info.Mode().Type())
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return Entry{}, err
	}
	hdr.Name, hdr.Mode = rel, int64(modeOf(info.Mode()))
	if info.IsDir() {
		hdr.Name += "/"
	}
	// Owners are not restored; names only make the archive depend on the
	// host's user database.
	hdr.Uname, hdr.Gname = "", ""
	e, err := entryOf(hdr)
	if err != nil {
		return Entry{}, err
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return Entry{}, err
	}
	if e.Type != TypeFile {
		return e, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return Entry{}, err
	}
	defer f.Close()
	sum := &digest{h: sha256.New()}
	// Exactly the size in the header: a file that shrinks meanwhile is an
	// error, one that grows is cut at the size recorded.
	if _, err := io.CopyN(io.MultiWriter(tw, sum), f, hdr.Size); err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("file shrank while being archived")
		}
		return Entry{}, err
	}
	e.SHA256 = sum.String()
	return e, nil
}

// entryOf is the manifest entry a header stands for, content digest aside.
func entryOf(hdr *tar.Header) (Entry, error) {
	e := Entry{Path: strings.TrimSuffix(hdr.Name, "/"), Mode: Mode(hdr.Mode & 0o7777)}
	if !local(e.Path) {
		return Entry{}, fmt.Errorf("%w: %q is absolute or leaves the root", ErrUnsafe, hdr.Name)
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
		e.Type, e.Size = TypeFile, hdr.Size
	case tar.TypeDir:
		e.Type = TypeDir
	case tar.TypeSymlink:
		e.Type, e.Link = TypeSymlink, hdr.Linkname
	default:
		return Entry{}, fmt.Errorf("%w: %q has tar type %q", ErrUnsafe, hdr.Name, hdr.Typeflag)
	}
	return e, nil
}

// digest is a sha256 that also counts.
type digest struct {
	h hash.Hash
	n int64
}

func (d *digest) Write(p []byte) (int, error) {
	d.n += int64(len(p))
	return d.h.Write(p)
}

func (d *digest) String() string { return hex.EncodeToString(d.h.Sum(nil)) }

// verify reads the archive back: its size and sha256 must be the manifest's,
// and every entry, content included, must be the one the manifest lists, in
// order. Any difference is ErrCorrupt.
func verify(ctx context.Context, file string, m *Manifest) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("%w: open archive: %w", ErrCorrupt, err)
	}
	defer f.Close()
	sum := &digest{h: sha256.New()}
	r := io.TeeReader(f, sum)
	entriesErr := compare(ctx, r, m)
	if err := ctx.Err(); err != nil {
		return err
	}
	// The hash covers the whole file, whatever the tar reader left unread.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("read archive: %w", err)
	}
	if got := sum.String(); got != m.Archive.SHA256 || sum.n != m.Archive.Size {
		return fmt.Errorf("%w: archive has sha256 %s and %d bytes, the manifest says %s and %d bytes",
			ErrCorrupt, got, sum.n, m.Archive.SHA256, m.Archive.Size)
	}
	return entriesErr
}

func compare(ctx context.Context, r io.Reader, m *Manifest) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	tr := tar.NewReader(gz)
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if i != len(m.Entries) {
				return fmt.Errorf("%w: archive has %d entries, the manifest %d", ErrCorrupt, i, len(m.Entries))
			}
			_, err = io.Copy(io.Discard, gz)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: entry %d: %w", ErrCorrupt, i, err)
		}
		got, err := entryOf(hdr)
		if err != nil {
			return err
		}
		if got.Type == TypeFile {
			sum := &digest{h: sha256.New()}
			if _, err := io.Copy(sum, tr); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrCorrupt, got.Path, err)
			}
			got.SHA256 = sum.String()
		}
		if i >= len(m.Entries) {
			return fmt.Errorf("%w: archive has %s, beyond the manifest's %d entries", ErrCorrupt, got.Path, len(m.Entries))
		}
		if want := m.Entries[i]; got != want {
			return fmt.Errorf("%w: entry %d is %+v in the archive, %+v in the manifest", ErrCorrupt, i, got, want)
		}
	}
}
