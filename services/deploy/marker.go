package deploy

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Marker is what MarkerFile records about a release. A release without
// one was not put there by upshift (nor adopted): upshift never reuses,
// counts or removes it.
type Marker struct {
	// Digest is the digest of the package the release was extracted from;
	// empty for a release adopted without one.
	Digest string `json:"digest,omitempty"`
	// Content is the release's ContentDigest, recorded when it is adopted:
	// a package of the same version whose files are the same is the same
	// release, whatever its digest.
	Content string `json:"content,omitempty"`
	// InstalledAt orders releases for the clean-up, newest first.
	InstalledAt time.Time `json:"installedAt,omitzero"`
	// Adopted: put in place by other means and recorded by `upshift adopt`.
	Adopted bool `json:"adopted,omitempty"`
	// Good: put in service by a deploy that succeeded (or adopted), and
	// not rolled back from since. Only good releases count towards keep,
	// so a broken release never pushes out the last good one.
	Good bool `json:"good,omitempty"`
}

// ReadMarker reads a release's marker. os.ErrNotExist means the release or
// its marker is missing. A marker of the first format, one line holding
// the package's digest, reads as a good release installed when it was
// written.
func ReadMarker(release string) (Marker, error) {
	path := filepath.Join(release, MarkerFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return Marker{}, err
	}
	if b = bytes.TrimSpace(b); bytes.HasPrefix(b, []byte("{")) {
		var m Marker
		if err := json.Unmarshal(b, &m); err != nil {
			return Marker{}, fmt.Errorf("release marker %s: %w", path, err)
		}
		return m, nil
	}
	m := Marker{Digest: string(b), Good: true}
	if fi, err := os.Stat(path); err == nil {
		m.InstalledAt = fi.ModTime().UTC()
	}
	return m, nil
}

// writeMarker writes a release's marker in one rename, so a crash leaves
// the old marker or the new one.
func writeMarker(release string, m Marker) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(release, MarkerFile+".tmp-"+rand.Text()[:8])
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("release marker: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("release marker: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(release, MarkerFile)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("release marker: %w", err)
	}
	return syncDir(release)
}

// markGood records whether a release is good. A release without a marker
// is not upshift's and is left as it is.
func markGood(release string, good bool) error {
	m, err := ReadMarker(release)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil || m.Good == good {
		return err
	}
	m.Good = good
	return writeMarker(release, m)
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// ContentDigest digests the files of a release: each entry's path and
// kind, a file's executable bit and content, a link's target. What upshift
// adds to a release (its marker, the shared link) is left out, and so are
// times, owners and other mode bits, which a copy or an extraction does not
// keep alike. Two releases with the same content digest run the same.
func ContentDigest(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == MarkerFile || strings.HasPrefix(rel, MarkerFile+".tmp-") || (rel == "shared" && d.Type()&fs.ModeSymlink != 0) {
			return nil
		}
		switch t := d.Type(); {
		case t.IsDir():
			fmt.Fprintf(h, "d %s\x00", rel)
		case t&fs.ModeSymlink != 0:
			dest, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "l %s\x00%s\x00", rel, dest)
		case t.IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			sum, err := fileSum(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "f %s\x00%t\x00%s\x00", rel, info.Mode()&0o111 != 0, sum)
		default:
			return fmt.Errorf("%s: %w: %s is neither a file, a directory nor a link", dir, ErrUnsafePackage, rel)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("content digest of %s: %w", dir, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
