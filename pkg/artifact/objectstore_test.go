package artifact_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/artifact"
	"github.com/upshift/upshift/pkg/natstest"
)

func TestFetchFromObjectStore(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t)
	ctx := context.Background()
	body := []byte("release 2.0 from the object store")
	for _, bucket := range []string{"releases", "elsewhere"} {
		obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := obs.PutBytes(ctx, "app/2.0.tar.gz", body); err != nil {
			t.Fatal(err)
		}
	}
	url := artifact.ObjectURL("releases", "app/2.0.tar.gz")
	if url != "objectstore://releases/app/2.0.tar.gz" {
		t.Fatalf("url %s", url)
	}
	s := &artifact.Store{Dir: t.TempDir(), JS: js, Sources: []string{"objectstore://releases/app/"}}
	p, err := s.Fetch(ctx, url, sha(body))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != string(body) {
		t.Fatalf("copy holds %q", got)
	}
	for _, tc := range []struct {
		name, url, digest string
		want              error
	}{
		{"wrong digest", artifact.ObjectURL("releases", "app/2.0.tar.gz"), sha([]byte("other")), artifact.ErrDigestMismatch},
		{"no such object", artifact.ObjectURL("releases", "app/9.9.tar.gz"), sha(body), artifact.ErrUnavailable},
		{"bucket not allowed", artifact.ObjectURL("elsewhere", "app/2.0.tar.gz"), sha(body), artifact.ErrNotAllowed},
		{"name not allowed", artifact.ObjectURL("releases", "other/2.0.tar.gz"), sha(body), artifact.ErrNotAllowed},
		{"escape by dot-dot", "objectstore://releases/app/../other/2.0.tar.gz", sha(body), artifact.ErrNotAllowed},
		{"bucket differs in case", artifact.ObjectURL("Releases", "app/2.0.tar.gz"), sha(body), artifact.ErrNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &artifact.Store{Dir: t.TempDir(), JS: js, Sources: []string{"objectstore://releases/app/"}}
			if _, err := s.Fetch(ctx, tc.url, tc.digest); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if errors.Is(err, artifact.ErrTransient) {
				t.Fatalf("err %v is not worth a retry", err)
			}
		})
	}
	// A store without a NATS connection cannot read one.
	noJS := &artifact.Store{Dir: t.TempDir()}
	if _, err := noJS.Fetch(ctx, url, sha(body)); !errors.Is(err, artifact.ErrUnsupported) {
		t.Fatalf("without NATS: %v", err)
	}
}

func TestReadSmallFileFromAllowedSourcesOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(dir+"/a.minisig", []byte("signature"), 0o644)
	os.WriteFile(dir+"/big.minisig", make([]byte, 100), 0o644)
	s := &artifact.Store{Dir: t.TempDir(), Sources: []string{"file://" + dir + "/"}}
	ctx := context.Background()
	if b, err := s.Read(ctx, "file://"+dir+"/a.minisig", 64); err != nil || string(b) != "signature" {
		t.Fatalf("read %q, %v", b, err)
	}
	if _, err := s.Read(ctx, "file://"+dir+"/big.minisig", 64); !errors.Is(err, artifact.ErrTooLarge) {
		t.Fatalf("big: %v", err)
	}
	if _, err := s.Read(ctx, "file:///etc/passwd", 64); !errors.Is(err, artifact.ErrNotAllowed) {
		t.Fatalf("outside: %v", err)
	}
}
