// Package artifact stages release packages on a host: it copies or downloads
// a package into a local store, checks its digest while writing, and hands
// out the verified copy. Deploy extracts from that copy, never from the
// source, so what was verified is what is installed.
//
// A store fetches only from the sources its operator allows (URL prefixes):
// a request names a package, but cannot make the host read any other file
// or reach any other server.
//
// Sources: file:///PATH, http(s)://HOST/PATH and objectstore://BUCKET/NAME,
// an object in a NATS JetStream Object Store bucket (`upshift artifact put`
// uploads one). The scheme is objectstore, not nats: a nats:// URL names a
// server, and the bucket lives on whatever server the service is connected
// to. An objectstore source is allowed by bucket and name prefix, as
// objectstore://releases/ or objectstore://releases/billing/.
package artifact

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Errors, for errors.Is.
var (
	ErrDigestMismatch = errors.New("digest mismatch")
	ErrUnsupported    = errors.New("unsupported artifact")
	ErrTooLarge       = errors.New("artifact too large")
	ErrUnavailable    = errors.New("artifact unavailable")
	ErrNotAllowed     = errors.New("artifact source not allowed")
	// ErrTransient marks an unavailability worth retrying: a network error,
	// a 5xx or 429 answer. A missing file or a 404 is not.
	ErrTransient = errors.New("transient")
)

// Store is a directory of verified artifacts, named by digest.
type Store struct {
	Dir string
	// Sources are the URL prefixes artifacts may come from, such as
	// https://artifacts.example.com/releases/ or file:///srv/packages/.
	// Empty allows any (tests); every service main requires them.
	Sources []string
	// Client downloads http(s) artifacts. Default: 10 minute time-out.
	Client *http.Client
	// MaxSize bounds an artifact. Default 4 GiB.
	MaxSize int64
	// JS reads objectstore:// artifacts; without it they are unsupported.
	JS jetstream.JetStream
}

// NewHash returns the hash for a digest's algorithm.
func NewHash(alg string) (hash.Hash, error) {
	switch alg {
	case "sha256":
		return sha256.New(), nil
	case "sha512":
		return sha512.New(), nil
	case "md5":
		return md5.New(), nil
	}
	return nil, fmt.Errorf("%w: digest algorithm %q", ErrUnsupported, alg)
}

// Digest hashes r with the algorithm named and returns "<alg>:<hex>".
func Digest(r io.Reader, alg string) (string, error) {
	h, err := NewHash(alg)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return alg + ":" + hex.EncodeToString(h.Sum(nil)), nil
}

// Verify checks that the file at path has the digest.
func Verify(path, digest string) error {
	alg, _, _ := strings.Cut(digest, ":")
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	got, err := Digest(f, alg)
	if err != nil {
		return err
	}
	if got != digest {
		return fmt.Errorf("%w: %s is %s, want %s", ErrDigestMismatch, filepath.Base(path), got, digest)
	}
	return nil
}

// Path is where the store keeps the artifact with a digest.
func (s *Store) Path(digest string) string {
	return filepath.Join(s.Dir, strings.ReplaceAll(digest, ":", "-"))
}

// Fetch returns the path of a verified local copy of the artifact at rawURL
// (file, http or https). A copy already in the store is verified again and
// reused.
func (s *Store) Fetch(ctx context.Context, rawURL, digest string) (string, error) {
	alg, _, _ := strings.Cut(digest, ":")
	if _, err := NewHash(alg); err != nil {
		return "", err
	}
	if err := s.Allowed(rawURL); err != nil {
		return "", err
	}
	dest := s.Path(digest)
	if err := Verify(dest, digest); err == nil {
		return dest, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		_ = os.Remove(dest) // a bad copy: fetch it again
	}
	src, err := s.open(ctx, rawURL)
	if err != nil {
		return "", err
	}
	defer src.Close()
	if err := os.MkdirAll(s.Dir, 0o750); err != nil {
		return "", fmt.Errorf("artifact store: %w", err)
	}
	tmp, err := os.CreateTemp(s.Dir, ".fetch-*")
	if err != nil {
		return "", fmt.Errorf("artifact store: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h, _ := NewHash(alg)
	limit := s.MaxSize
	if limit <= 0 {
		limit = 4 << 30
	}
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(src, limit+1))
	if err != nil {
		return "", fmt.Errorf("%w (%w): read %s: %v", ErrUnavailable, ErrTransient, rawURL, err)
	}
	if n > limit {
		return "", fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	if got := alg + ":" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return "", fmt.Errorf("%w: %s is %s, want %s", ErrDigestMismatch, rawURL, got, digest)
	}
	if err := tmp.Sync(); err != nil {
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return "", fmt.Errorf("artifact store: %w", err)
	}
	return dest, nil
}

func (s *Store) open(ctx context.Context, rawURL string) (io.ReadCloser, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	switch u.Scheme {
	case "file":
		f, err := os.Open(u.Path)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return f, nil
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
		}
		client := s.Client
		if client == nil {
			client = &http.Client{Timeout: 10 * time.Minute}
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%w (%w): %v", ErrUnavailable, ErrTransient, err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
				return nil, fmt.Errorf("%w (%w): GET %s: %s", ErrUnavailable, ErrTransient, rawURL, resp.Status)
			}
			return nil, fmt.Errorf("%w: GET %s: %s", ErrUnavailable, rawURL, resp.Status)
		}
		return resp.Body, nil
	case SchemeObjectStore:
		return s.openObject(ctx, u)
	}
	return nil, fmt.Errorf("%w: scheme %q", ErrUnsupported, u.Scheme)
}

// SchemeObjectStore is the scheme of an artifact in a NATS Object Store:
// objectstore://BUCKET/NAME.
const SchemeObjectStore = "objectstore"

// ObjectURL is the URL of the object name in bucket.
func ObjectURL(bucket, name string) string {
	return (&url.URL{Scheme: SchemeObjectStore, Host: bucket, Path: "/" + name}).String()
}

func (s *Store) openObject(ctx context.Context, u *url.URL) (io.ReadCloser, error) {
	if s.JS == nil {
		return nil, fmt.Errorf("%w: %s: this store has no NATS connection", ErrUnsupported, u.Redacted())
	}
	name := strings.TrimPrefix(u.Path, "/")
	if u.Host == "" || name == "" {
		return nil, fmt.Errorf("%w: %s: want objectstore://BUCKET/NAME", ErrUnsupported, u.Redacted())
	}
	obs, err := s.JS.ObjectStore(ctx, u.Host)
	if err == nil {
		var obj jetstream.ObjectResult
		if obj, err = obs.Get(ctx, name); err == nil {
			return obj, nil
		}
	}
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, u.Redacted(), err)
	}
	return nil, fmt.Errorf("%w (%w): %s: %v", ErrUnavailable, ErrTransient, u.Redacted(), err)
}

// Read returns the content of the small file at rawURL (a signature), from
// an allowed source, at most max bytes.
func (s *Store) Read(ctx context.Context, rawURL string, max int64) ([]byte, error) {
	if err := s.Allowed(rawURL); err != nil {
		return nil, err
	}
	src, err := s.open(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	b, err := io.ReadAll(io.LimitReader(src, max+1))
	if err != nil {
		return nil, fmt.Errorf("%w (%w): read %s: %v", ErrUnavailable, ErrTransient, rawURL, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: %s: more than %d bytes", ErrTooLarge, rawURL, max)
	}
	return b, nil
}

// Allowed checks that rawURL is under one of the store's sources, after
// resolving "." and ".." in its path.
func (s *Store) Allowed(rawURL string) error {
	if len(s.Sources) == 0 {
		return nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	if u.User != nil {
		return fmt.Errorf("%w: %s carries credentials", ErrNotAllowed, u.Redacted())
	}
	for _, src := range s.Sources {
		p, err := url.Parse(src)
		if err != nil || p.Scheme != u.Scheme || !sameHost(u.Scheme, p.Host, u.Host) {
			continue
		}
		base := strings.TrimSuffix(path.Clean("/"+p.Path), "/")
		if clean := path.Clean("/" + u.Path); clean == base || strings.HasPrefix(clean, base+"/") {
			return nil
		}
	}
	return fmt.Errorf("%w: %s is not under %s", ErrNotAllowed, rawURL, strings.Join(s.Sources, ", "))
}

// sameHost compares hosts as DNS does, and buckets exactly, as NATS does.
func sameHost(scheme, a, b string) bool {
	if scheme == SchemeObjectStore {
		return a == b
	}
	return strings.EqualFold(a, b)
}
