package artifact_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/upshift/upshift/pkg/artifact"
)

func sha(b []byte) string { s := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(s[:]) }

func TestFetchFileAndHTTPVerifiesAndCaches(t *testing.T) {
	body := []byte("release 1.1")
	src := filepath.Join(t.TempDir(), "pkg.tar.gz")
	if err := os.WriteFile(src, body, 0o644); err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	defer srv.Close()
	ctx := context.Background()

	for _, u := range []string{"file://" + src, srv.URL + "/pkg.tar.gz"} {
		s := &artifact.Store{Dir: t.TempDir()}
		p, err := s.Fetch(ctx, u, sha(body))
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if got, _ := os.ReadFile(p); string(got) != string(body) {
			t.Fatalf("copy holds %q", got)
		}
		// Reused while intact, fetched again once tampered with.
		before := hits.Load()
		if _, err := s.Fetch(ctx, u, sha(body)); err != nil || hits.Load() != before {
			t.Fatalf("not reused: %v", err)
		}
		os.WriteFile(p, []byte("tampered"), 0o644)
		if p2, err := s.Fetch(ctx, u, sha(body)); err != nil || artifact.Verify(p2, sha(body)) != nil {
			t.Fatalf("tampered copy served: %v", err)
		}
	}
}

func TestFetchRefuses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/missing":
			http.NotFound(w, r)
			return
		case "/busy":
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		w.Write(make([]byte, 2048))
	}))
	defer srv.Close()
	ctx := context.Background()
	zero := sha(make([]byte, 2048))
	for _, tc := range []struct {
		name, url, digest string
		max               int64
		want              error
	}{
		{"wrong digest", srv.URL + "/a", sha([]byte("other")), 0, artifact.ErrDigestMismatch},
		{"not found", srv.URL + "/missing", zero, 0, artifact.ErrUnavailable},
		{"busy", srv.URL + "/busy", zero, 0, artifact.ErrTransient},
		{"unreachable", "http://127.0.0.1:1/a", zero, 0, artifact.ErrTransient},
		{"too large", srv.URL + "/a", zero, 1024, artifact.ErrTooLarge},
		{"scheme", "ftp://x/y", zero, 0, artifact.ErrUnsupported},
		{"algorithm", srv.URL + "/a", "crc32:00", 0, artifact.ErrUnsupported},
		{"no file", "file:///nonexistent/pkg", zero, 0, artifact.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &artifact.Store{Dir: t.TempDir(), MaxSize: tc.max}
			_, err := s.Fetch(ctx, tc.url, tc.digest)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if transient := errors.Is(err, artifact.ErrTransient); transient != (tc.want == artifact.ErrTransient) {
				t.Fatalf("err %v: transient %v", err, transient)
			}
			if left, _ := os.ReadDir(s.Dir); len(left) != 0 {
				t.Fatalf("left %v behind", left)
			}
		})
	}
}

func TestOnlyAllowedSources(t *testing.T) {
	s := &artifact.Store{Dir: t.TempDir(), Sources: []string{"https://artifacts.example.com/releases/", "file:///srv/packages"}}
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://artifacts.example.com/releases/billing-4.2.tar.gz", true},
		{"https://ARTIFACTS.example.com/releases/a/b.tgz", true},
		{"file:///srv/packages/app-1.1.tar.gz", true},
		{"file:///srv/packages/../../etc/passwd", false},
		{"file:///srv/packages-evil/x.tgz", false},
		{"file:///etc/passwd", false},
		{"https://artifacts.example.com/other/x.tgz", false},
		{"https://artifacts.example.com/releases/../admin", false},
		{"http://artifacts.example.com/releases/x.tgz", false},
		{"https://evil.example.com/releases/x.tgz", false},
		{"https://user:pw@artifacts.example.com/releases/x.tgz", false},
		{"http://169.254.169.254/latest/meta-data", false},
	} {
		err := s.Allowed(tc.url)
		if (err == nil) != tc.ok || (!tc.ok && !errors.Is(err, artifact.ErrNotAllowed)) {
			t.Errorf("%s: %v", tc.url, err)
		}
	}
	// Refused before anything is read.
	if _, err := s.Fetch(context.Background(), "file:///etc/passwd", "sha256:"+strings.Repeat("0", 64)); !errors.Is(err, artifact.ErrNotAllowed) || strings.Contains(err.Error(), "sha256:") && !strings.Contains(err.Error(), "is not under") {
		t.Fatalf("fetch: %v", err)
	}
}
