package unpack_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/unpack"
)

// Whatever a package holds, Inspect and Extract agree on it, neither
// panics, and an extraction writes nothing outside its directory and leaves
// no link that leads out of it.
func FuzzInspectAndExtract(f *testing.F) {
	for _, c := range unsafeCases() {
		f.Add(tarOf(f, c.entries))
	}
	f.Add(tarOf(f, []entry{dir("./"), dir("bin/"), reg("bin/app", "#!/bin/sh\n"), symlink("bin/run", "app"), reg("VERSION", "1\n")}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var gz bytes.Buffer
		w := gzip.NewWriter(&gz)
		w.Write(raw)
		w.Close()
		parent := t.TempDir()
		pkg := filepath.Join(parent, "pkg.tar.gz")
		if err := os.WriteFile(pkg, gz.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		release := filepath.Join(parent, "release")
		if err := os.Mkdir(release, 0o755); err != nil {
			t.Fatal(err)
		}
		l := unpack.Limits{MaxSize: 1 << 20, MaxFiles: 64}
		_, ierr := unpack.Inspect(context.Background(), pkg, l)
		_, xerr := unpack.Extract(context.Background(), pkg, release, l)
		if (ierr == nil) != (xerr == nil) || ierr != nil && ierr.Error() != xerr.Error() {
			t.Fatalf("Inspect says %v, Extract %v", ierr, xerr)
		}
		entries, _ := os.ReadDir(parent)
		if len(entries) != 2 {
			t.Fatalf("written beside the release: %v", entries)
		}
		filepath.WalkDir(release, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 {
				return nil
			}
			dest, _ := os.Readlink(p)
			if !filepath.IsAbs(dest) {
				dest = filepath.Join(filepath.Dir(p), dest)
			}
			if rel, err := filepath.Rel(release, dest); err != nil || strings.HasPrefix(rel, "..") {
				t.Fatalf("link %s leads out, to %s", p, dest)
			}
			return nil
		})
	})
}

func tarOf(f *testing.F, entries []entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body))}); err != nil {
			f.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}
