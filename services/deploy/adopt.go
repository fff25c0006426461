package deploy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/targets"
)

// ErrNotAdoptable is an installation Adopt cannot record as it is.
var ErrNotAdoptable = errors.New("cannot adopt")

// AdoptOptions say what to adopt.
type AdoptOptions struct {
	// Version is the release's version: releases/<Version>.
	Version string
	// Digest, if known, is the digest of the package the installation came
	// from: a later request with that package reuses the release at once.
	// Without it, a package of the same version is compared file by file.
	Digest string
	// From, if set, is a directory holding the installation, copied into
	// releases/<Version> (which must not exist yet). The original is left
	// as it is.
	From string
}

// Adopted says what Adopt did.
type Adopted struct {
	Release string `json:"release"`
	Marker  Marker `json:"marker"`
	// Copied is the directory the release was copied from, if any.
	Copied string `json:"copied,omitempty"`
	// Current is the version in service afterwards; Switched says whether
	// Adopt pointed current at the release (it does only when no release
	// was current).
	Current  string `json:"current"`
	Switched bool   `json:"switched"`
	// Already: the release was recorded already; nothing changed.
	Already bool `json:"already"`
}

// Adopt records an installation put in place by other means as a release of
// t, so upshift can take over a running system: a later upgrade from it,
// back to it or rolled back to it treats it as its own. It runs on the
// target's host, under the target's lock, and runs no hook: the running
// program is not touched.
func Adopt(ctx context.Context, t targets.Target, o AdoptOptions) (Adopted, error) {
	if err := checkVersion("adopted", o.Version); err != nil {
		return Adopted{}, fmt.Errorf("%w: %w", ErrNotAdoptable, err)
	}
	if o.Digest != "" {
		if err := spec.CheckDigest(o.Digest); err != nil {
			return Adopted{}, fmt.Errorf("%w: digest: %w", ErrNotAdoptable, err)
		}
	}
	unlock, err := lockTarget(ctx, t.Root)
	if err != nil {
		return Adopted{}, err
	}
	defer unlock()
	res := Adopted{Release: t.Release(o.Version)}
	cur, err := t.CurrentVersion()
	if err != nil {
		return res, fmt.Errorf("%w: %w (move the installation to %s and point current at it, or give --from)",
			ErrNotAdoptable, err, res.Release)
	}
	if o.From != "" {
		if err := copyRelease(ctx, o.From, t.Releases(), o.Version); err != nil {
			return res, err
		}
		res.Copied = o.From
	}
	if m, err := ReadMarker(res.Release); err == nil {
		if o.Digest != "" && m.Digest != "" && m.Digest != o.Digest {
			return res, fmt.Errorf("%w: %w: %s is recorded already with package %s, not %s",
				ErrNotAdoptable, ErrReleaseConflict, res.Release, m.Digest, o.Digest)
		}
		res.Marker, res.Current, res.Already = m, cur, true
		return res, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return res, err
	}
	if !isDir(res.Release) {
		return res, fmt.Errorf("%w: %s is not a directory: put the installation there, or give --from DIR to copy it in",
			ErrNotAdoptable, res.Release)
	}
	content, err := ContentDigest(res.Release)
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrNotAdoptable, err)
	}
	res.Marker = Marker{Digest: o.Digest, Content: content, InstalledAt: time.Now().UTC(), Adopted: true, Good: true}
	if err := writeMarker(res.Release, res.Marker); err != nil {
		return res, err
	}
	res.Current = cur
	if cur == "" {
		if err := switchTo(t.Root, o.Version); err != nil {
			return res, err
		}
		res.Current, res.Switched = o.Version, true
	}
	return res, nil
}

// copyRelease copies the tree at from into releases/<version>, through a
// hidden directory renamed into place once complete, as an extraction is.
// Files, directories and symbolic links are copied with their permission
// bits; anything else is refused.
func copyRelease(ctx context.Context, from, releases, version string) (err error) {
	release := filepath.Join(releases, version)
	if _, err := os.Lstat(release); err == nil {
		return fmt.Errorf("%w: %s exists already: adopt it without --from", ErrNotAdoptable, release)
	}
	if !isDir(from) {
		return fmt.Errorf("%w: --from %s is not a directory", ErrNotAdoptable, from)
	}
	if err := os.MkdirAll(releases, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(releases, ".tmp-adopt-"+rand.Text()[:12])
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	err = filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		dest := filepath.Join(tmp, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch t := d.Type(); {
		case t.IsDir():
			return os.MkdirAll(dest, info.Mode().Perm())
		case t&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, dest)
		case t.IsRegular():
			return copyFile(path, dest, info.Mode().Perm())
		}
		return fmt.Errorf("%w: %s is neither a file, a directory nor a link", ErrNotAdoptable, path)
	})
	if err != nil {
		return fmt.Errorf("copy %s into %s: %w", from, release, err)
	}
	if err := os.Rename(tmp, release); err != nil {
		return fmt.Errorf("copy %s into %s: %w", from, release, err)
	}
	return syncDir(releases)
}

func copyFile(src, dest string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dest, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
