package unpack

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
)

// Inspect reads the whole package at pkg and applies every rule, writing
// nothing: the error is the one Extract would return for it, for the same
// entry.
func Inspect(ctx context.Context, pkg string, l Limits) (Stats, error) {
	c := newChecker(l)
	err := walk(ctx, pkg, func(hdr *tar.Header, body io.Reader) error {
		if _, err := c.entry(hdr); err != nil {
			return err
		}
		// Read to the end, so a truncated member is found here too.
		if _, err := io.Copy(io.Discard, body); err != nil {
			return bodyError(hdr.Name, err)
		}
		return nil
	})
	if err == nil {
		err = c.finish()
	}
	return c.st, err
}

// Extract unpacks the package at pkg into dir, an empty directory, under the
// rules Inspect applies. Files are not synced one by one: call Sync on the
// release once it is complete, before it is put into service. On error dir
// holds part of the package; the caller removes it.
func Extract(ctx context.Context, pkg, dir string, l Limits) (Stats, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Stats{}, fmt.Errorf("extract: %w", err)
	}
	defer root.Close()
	c := newChecker(l)
	dirs := map[string]fs.FileMode{} // applied last, once the directories are filled
	err = walk(ctx, pkg, func(hdr *tar.Header, body io.Reader) error {
		a, err := c.entry(hdr)
		if err != nil || a.name == "" {
			return err
		}
		if a.replace {
			if err := root.Remove(a.name); err != nil {
				return fmt.Errorf("extract %s: %w", a.name, err)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			dirs[a.name] = mode(hdr) | 0o700 // the owner must be able to clean it up
			return mkdirAll(root, a.name, 0o700)
		case tar.TypeSymlink:
			if err := mkdirAll(root, path.Dir(a.name), 0o755); err != nil {
				return err
			}
			if err := root.Symlink(hdr.Linkname, a.name); err != nil {
				return fmt.Errorf("extract %s: %w", a.name, err)
			}
			return nil
		}
		if err := mkdirAll(root, path.Dir(a.name), 0o755); err != nil {
			return err
		}
		return writeFile(root, a.name, mode(hdr), body)
	})
	if err == nil {
		err = c.finish()
	}
	if err != nil {
		return c.st, err
	}
	for d, m := range dirs {
		if err := root.Chmod(d, m); err != nil {
			return c.st, fmt.Errorf("extract %s: %w", d, err)
		}
	}
	return c.st, nil
}

// walk calls f for each entry of the .tar.gz at pkg, in order.
func walk(ctx context.Context, pkg string, f func(*tar.Header, io.Reader) error) error {
	file, err := os.Open(pkg)
	if err != nil {
		return fmt.Errorf("open package: %w", err)
	}
	defer file.Close()
	gz, err := gzip.NewReader(file)
	if err != nil {
		return fmt.Errorf("%w: %s is not gzip: %v", ErrBad, filepath.Base(pkg), err)
	}
	tr := tar.NewReader(gz)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if errors.Is(err, tar.ErrInsecurePath) {
			return fmt.Errorf("%w: %q: %v", ErrUnsafe, hdr.Name, err)
		}
		if err != nil {
			return fmt.Errorf("%w: reading the archive: %v", ErrBad, err)
		}
		if err := f(hdr, tr); err != nil {
			return err
		}
	}
}

func bodyError(name string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s is truncated", ErrBad, name)
	}
	return fmt.Errorf("%w: reading %s: %v", ErrBad, name, err)
}

func mkdirAll(root *os.Root, dir string, perm fs.FileMode) error {
	if dir == "." {
		return nil
	}
	if err := root.MkdirAll(dir, perm); err != nil {
		return fmt.Errorf("extract %s: %w", dir, err)
	}
	return nil
}

func writeFile(root *os.Root, name string, perm fs.FileMode, body io.Reader) error {
	w, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	defer w.Close()
	if _, err := io.Copy(w, body); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return bodyError(name, err)
		}
		return fmt.Errorf("extract %s: %w", name, err)
	}
	// Chmod on the open file: the archive's mode, less the special bits,
	// whatever the umask.
	if err := w.Chmod(perm); err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	return w.Close()
}
