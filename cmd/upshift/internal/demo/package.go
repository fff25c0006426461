package demo

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Artifact is a packed release: what an upgrade request names.
type Artifact struct {
	Version string
	// Path of the .tar.gz on this machine.
	Path string
	// URL is file://<Path>.
	URL string
	// Digest is "sha256:<hex>".
	Digest string
}

// Entries of a package, relative to the release directory it unpacks into.
const (
	BinEntry     = "bin/demo-app"
	VersionEntry = "VERSION"
)

// Package packs binPath as bin/demo-app (mode 0755) with a VERSION file into
// dir/demo-app-<version>.tar.gz.
func Package(dir, version, binPath string) (Artifact, error) {
	if err := checkVersion(version); err != nil {
		return Artifact{}, fmt.Errorf("package demo app: %w", err)
	}
	a, err := pack(dir, version, binPath)
	if err != nil {
		return Artifact{}, fmt.Errorf("package demo app %s: %w", version, err)
	}
	return a, nil
}

func pack(dir, version, binPath string) (Artifact, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Artifact{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Artifact{}, err
	}
	bin, err := os.Open(binPath)
	if err != nil {
		return Artifact{}, err
	}
	defer bin.Close()
	st, err := bin.Stat()
	if err != nil {
		return Artifact{}, err
	}
	if !st.Mode().IsRegular() {
		return Artifact{}, fmt.Errorf("%s is not a regular file", binPath)
	}

	// Written beside the final name and renamed, so a reader never sees
	// half a package under the name it was told.
	tmp, err := os.CreateTemp(dir, ".pack-*")
	if err != nil {
		return Artifact{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	// BestSpeed: a few percent larger, several times quicker to pack.
	gz, err := gzip.NewWriterLevel(io.MultiWriter(tmp, h), gzip.BestSpeed)
	if err != nil {
		return Artifact{}, err
	}
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(header(BinEntry, 0o755, st.Size())); err != nil {
		return Artifact{}, err
	}
	if _, err := io.Copy(tw, bin); err != nil {
		return Artifact{}, fmt.Errorf("copy %s: %w", binPath, err)
	}
	v := []byte(version + "\n")
	if err := tw.WriteHeader(header(VersionEntry, 0o644, int64(len(v)))); err != nil {
		return Artifact{}, err
	}
	if _, err := tw.Write(v); err != nil {
		return Artifact{}, err
	}
	if err := tw.Close(); err != nil {
		return Artifact{}, err
	}
	if err := gz.Close(); err != nil {
		return Artifact{}, err
	}
	if err := tmp.Close(); err != nil {
		return Artifact{}, err
	}
	path := filepath.Join(dir, "demo-app-"+version+".tar.gz")
	if err := os.Rename(tmp.Name(), path); err != nil {
		return Artifact{}, err
	}
	return Artifact{
		Version: version,
		Path:    path,
		URL:     (&url.URL{Scheme: "file", Path: path}).String(),
		Digest:  "sha256:" + hex.EncodeToString(h.Sum(nil)),
	}, nil
}

// header stamps every entry with one fixed time (2024-01-01), so the same
// binary always packs to the same digest.
func header(name string, mode, size int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: size,
		ModTime: time.Unix(1704067200, 0)}
}
