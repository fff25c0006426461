package demo_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/upshift/upshift/cmd/upshift/internal/demo"
	"github.com/upshift/upshift/pkg/artifact"
)

type entry struct {
	name string
	mode int64
	body string
}

func readPackage(t *testing.T, path string) []entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out []entry
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			t.Errorf("%s: type %c, want a regular file", h.Name, h.Typeflag)
		}
		out = append(out, entry{h.Name, h.Mode, string(b)})
	}
}

func TestPackage(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "demo-app")
	if err := os.WriteFile(bin, []byte("pretend binary"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "artifacts")
	a, err := demo.Package(out, "1.1", bin)
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != "1.1" || a.Path != filepath.Join(out, "demo-app-1.1.tar.gz") || a.URL != "file://"+a.Path {
		t.Errorf("artifact %+v", a)
	}

	got := readPackage(t, a.Path)
	want := []entry{{"bin/demo-app", 0o755, "pretend binary"}, {"VERSION", 0o644, "1.1\n"}}
	if len(got) != len(want) {
		t.Fatalf("entries %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	b, err := os.ReadFile(a.Path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if a.Digest != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("digest %s, want sha256 of the file", a.Digest)
	}
	// What precheck and deploy do with it.
	store := &artifact.Store{Dir: filepath.Join(dir, "store")}
	if _, err := store.Fetch(context.Background(), a.URL, a.Digest); err != nil {
		t.Errorf("artifact store fetch: %v", err)
	}

	again, err := demo.Package(filepath.Join(dir, "again"), "1.1", bin)
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest != a.Digest {
		t.Errorf("packing the same binary twice: %s then %s", a.Digest, again.Digest)
	}
}

func TestPackageRefuses(t *testing.T) {
	dir := t.TempDir()
	if _, err := demo.Package(dir, "1.1/../x", filepath.Join(dir, "x")); !errors.Is(err, demo.ErrBadVersion) {
		t.Errorf("bad version: %v, want ErrBadVersion", err)
	}
	if _, err := demo.Package(dir, "1.1", filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing binary: %v, want ErrNotExist", err)
	}
	if _, err := demo.Package(dir, "1.1", dir); err == nil {
		t.Error("packed a directory as the binary")
	}
}
