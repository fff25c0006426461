package backup

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/streams"
)

// DefaultBucket is the Object Store bucket backups are kept in.
const DefaultBucket = "upshift-backups"

// Store keeps finished backups in a JetStream Object Store bucket rather
// than on the target's disk: they live with the streams (replicated in a
// cluster), and a restore can run on another host. A backup is still made
// and verified in the target's backup directory, then uploaded, file by
// file and the manifest last, each streamed (memory stays flat whatever
// the size), checked against the manifest's digests, and only then removed
// from the disk. A restore downloads it, streamed, into that directory and
// checks every digest before touching anything, as for a local one.
type Store struct {
	JS jetstream.JetStream
	// Bucket; DefaultBucket if empty.
	Bucket  string
	Streams streams.Config
}

// Object names: <target>/<saga>/<file>.
func objectName(target, saga, file string) string { return target + "/" + saga + "/" + file }

func (s *Store) bucketName() string {
	if s.Bucket == "" {
		return DefaultBucket
	}
	return s.Bucket
}

// Location is the URL of a backup's objects, as the manifest records it.
func (s *Store) Location(target, saga string) string {
	return "objectstore://" + s.bucketName() + "/" + objectName(target, saga, "")
}

// bucket opens the bucket, creating it if missing.
func (s *Store) bucket(ctx context.Context) (jetstream.ObjectStore, error) {
	obs, err := s.JS.ObjectStore(ctx, s.bucketName())
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obs, err = s.JS.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: s.bucketName(),
			Description: "upshift backups: <target>/<saga>/<file>", Replicas: s.Streams.Replicas, Storage: s.Streams.Storage})
		if errors.Is(err, jetstream.ErrBucketExists) {
			obs, err = s.JS.ObjectStore(ctx, s.bucketName())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("backup bucket %s: %w", s.bucketName(), err)
	}
	return obs, nil
}

// files are the files of a backup besides its manifest, with their digests.
func files(m *Manifest) map[string]string {
	out := map[string]string{m.Archive.File: m.Archive.SHA256}
	for _, d := range m.Databases {
		out[d.File] = d.SHA256
	}
	return out
}

// Upload copies the verified backup in dir to the bucket, the manifest
// last, so a manifest in the bucket means a complete backup there too.
func (s *Store) Upload(ctx context.Context, dir string, m *Manifest) error {
	obs, err := s.bucket(ctx)
	if err != nil {
		return err
	}
	for file, sum := range files(m) {
		if err := put(ctx, obs, objectName(m.Target, m.Saga, file), filepath.Join(dir, file), sum); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if _, err := obs.PutBytes(ctx, objectName(m.Target, m.Saga, ManifestFile), b); err != nil {
		return fmt.Errorf("upload the manifest: %w", err)
	}
	return nil
}

func put(ctx context.Context, obs jetstream.ObjectStore, name, file, sum string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	defer f.Close()
	info, err := obs.Put(ctx, jetstream.ObjectMeta{Name: name}, f)
	if err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	if got := digestHex(info.Digest); got != sum {
		return fmt.Errorf("%w: uploaded %s has sha256 %s, the manifest says %s", ErrCorrupt, name, got, sum)
	}
	return nil
}

// digestHex turns the Object Store's "SHA-256=<base64url>" into hex.
func digestHex(d string) string {
	b, err := base64.URLEncoding.DecodeString(strings.TrimPrefix(d, "SHA-256="))
	if err != nil {
		return "unreadable digest " + d
	}
	return hex.EncodeToString(b)
}

// Manifest reads the manifest of the backup of saga for target from the
// bucket; ErrNoBackup if there is none.
func (s *Store) Manifest(ctx context.Context, target, saga string) (*Manifest, error) {
	obs, err := s.bucket(ctx)
	if err != nil {
		return nil, err
	}
	b, err := obs.GetBytes(ctx, objectName(target, saga, ManifestFile))
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("%w in %s", ErrNoBackup, s.Location(target, saga))
	}
	if err != nil {
		return nil, fmt.Errorf("read the manifest in %s: %w", s.Location(target, saga), err)
	}
	return decodeManifest(b, s.Location(target, saga))
}

// Stored checks that every file of m is in the bucket with m's digest
// (the Object Store's own, computed as it was stored: no download).
func (s *Store) Stored(ctx context.Context, m *Manifest) error {
	obs, err := s.bucket(ctx)
	if err != nil {
		return err
	}
	for file, sum := range files(m) {
		info, err := obs.GetInfo(ctx, objectName(m.Target, m.Saga, file))
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, objectName(m.Target, m.Saga, file), err)
		}
		if got := digestHex(info.Digest); got != sum {
			return fmt.Errorf("%w: %s has sha256 %s, the manifest says %s", ErrCorrupt, file, got, sum)
		}
	}
	return nil
}

// Download writes the backup of saga for target into dir (created): its
// files, streamed, then its manifest. The caller checks the digests.
func (s *Store) Download(ctx context.Context, target, saga, dir string) (*Manifest, error) {
	m, err := s.Manifest(ctx, target, saga)
	if err != nil {
		return nil, err
	}
	if err := m.check(saga, target); err != nil {
		return nil, err
	}
	obs, err := s.bucket(ctx)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for file := range files(m) {
		if err := get(ctx, obs, objectName(target, saga, file), filepath.Join(dir, file)); err != nil {
			return nil, err
		}
	}
	return m, writeManifest(dir, m)
}

func get(ctx context.Context, obs jetstream.ObjectStore, name, file string) error {
	r, err := obs.Get(ctx, name)
	if err != nil {
		return fmt.Errorf("%w: download %s: %w", ErrCorrupt, name, err)
	}
	defer r.Close()
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		// The Object Store checks its own digest at the end: a damaged
		// object fails here.
		return fmt.Errorf("%w: download %s: %w", ErrCorrupt, name, err)
	}
	return f.Close()
}

// Delete removes a backup from the bucket, the manifest first, so a
// partial delete never leaves a manifest pointing at missing files.
func (s *Store) Delete(ctx context.Context, target, saga string) error {
	obs, err := s.bucket(ctx)
	if err != nil {
		return err
	}
	m, err := s.Manifest(ctx, target, saga)
	if err != nil {
		return err
	}
	names := []string{ManifestFile}
	for f := range files(m) {
		names = append(names, f)
	}
	for _, f := range names {
		if err := obs.Delete(ctx, objectName(target, saga, f)); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return fmt.Errorf("delete %s: %w", objectName(target, saga, f), err)
		}
	}
	return nil
}

// List returns the manifests in the bucket, newest first; target "" for
// every target.
func (s *Store) List(ctx context.Context, target string) ([]*Manifest, error) {
	obs, err := s.bucket(ctx)
	if err != nil {
		return nil, err
	}
	infos, err := obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.bucketName(), err)
	}
	var out []*Manifest
	for _, info := range infos {
		if path.Base(info.Name) != ManifestFile || target != "" && !strings.HasPrefix(info.Name, target+"/") {
			continue
		}
		b, err := obs.GetBytes(ctx, info.Name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", info.Name, err)
		}
		m, err := decodeManifest(b, info.Name)
		if err != nil {
			continue // listed by name elsewhere; not ours to judge here
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}
