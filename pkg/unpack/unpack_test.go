package unpack_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/unpack"
)

type entry struct {
	name string
	typ  byte
	mode int64
	body string
	link string
}

func reg(name, body string) entry {
	return entry{name: name, typ: tar.TypeReg, mode: 0o644, body: body}
}
func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, to string) entry {
	return entry{name: name, typ: tar.TypeSymlink, mode: 0o777, link: to}
}

// pack writes a .tar.gz of entries and returns its path.
func pack(t *testing.T, entries []entry) string {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body))}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	gz.Close()
	p := filepath.Join(t.TempDir(), "pkg.tar.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// UnsafeCases are packages every rule refuses, with the words of the refusal.
func unsafeCases() []struct {
	name    string
	entries []entry
	want    string
} {
	ok := reg("VERSION", "1.0\n")
	many := []entry{ok}
	for i := range 8 {
		many = append(many, reg("f"+strings.Repeat("x", i), "x"))
	}
	return []struct {
		name    string
		entries []entry
		want    string
	}{
		{"absolute path", []entry{ok, reg("/tmp/evil", "x")}, "absolute path"},
		{"dot-dot", []entry{ok, reg("../evil", "x")}, "escapes"},
		{"nested dot-dot", []entry{ok, reg("bin/../../../evil", "x")}, "escapes"},
		{"symlink out", []entry{ok, symlink("evil", "../../evil")}, "outside the release"},
		{"absolute symlink", []entry{ok, symlink("evil", "/etc/passwd")}, "outside the release"},
		{"symlink out through another link", []entry{ok, dir("a/"), symlink("a/up", ".."), symlink("evil", "a/up/..")}, "resolves outside"},
		{"write through a link", []entry{ok, dir("d/"), symlink("l", "d"), reg("l/evil", "x")}, "path through"},
		{"directory over a link", []entry{ok, symlink("l", "VERSION"), dir("l/")}, "a directory over a file or link"},
		{"file over a directory", []entry{ok, dir("d/"), reg("d", "x")}, "over a directory"},
		{"hard link", []entry{ok, {name: "evil", typ: tar.TypeLink, link: "VERSION"}}, "hard link"},
		{"char device", []entry{ok, {name: "evil", typ: tar.TypeChar, mode: 0o666}}, "device"},
		{"block device", []entry{ok, {name: "evil", typ: tar.TypeBlock, mode: 0o666}}, "device"},
		{"fifo", []entry{ok, {name: "evil", typ: tar.TypeFifo, mode: 0o666}}, "fifo"},
		{"too large", []entry{ok, reg("evil", strings.Repeat("x", 100))}, "more than 64 bytes"},
		// A bomb of small files, each under the limit, all of them over it.
		{"too large in total", []entry{ok, reg("a", strings.Repeat("x", 30)), reg("b", strings.Repeat("x", 30)),
			reg("c", strings.Repeat("x", 30))}, "more than 64 bytes"},
		{"too many files", many, "more than 8 entries"},
		{"fake release marker", []entry{ok, reg(unpack.MarkerFile, "sha256:0")}, "reserved"},
	}
}

var limits = unpack.Limits{MaxSize: 64, MaxFiles: 8}

// Inspect and Extract refuse each unsafe package with the same error: one
// set of rules, whether anything is written or not.
func TestInspectAndExtractRefuseTheSame(t *testing.T) {
	t.Parallel()
	for _, c := range unsafeCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pkg := pack(t, c.entries)
			_, ierr := unpack.Inspect(context.Background(), pkg, limits)
			if !errors.Is(ierr, unpack.ErrUnsafe) || !strings.Contains(ierr.Error(), c.want) {
				t.Fatalf("inspect: %v, want unsafe with %q", ierr, c.want)
			}
			out := filepath.Join(t.TempDir(), "release")
			if err := os.Mkdir(out, 0o755); err != nil {
				t.Fatal(err)
			}
			_, xerr := unpack.Extract(context.Background(), pkg, out, limits)
			if xerr == nil || xerr.Error() != ierr.Error() {
				t.Fatalf("extract: %v\ninspect: %v", xerr, ierr)
			}
			filepath.WalkDir(filepath.Dir(out), func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Name() == "evil" && d.Type()&fs.ModeSymlink == 0 && d.Type().IsRegular() {
					t.Errorf("%s was written", p)
				}
				return nil
			})
		})
	}
}

func TestSafePackagePassesBoth(t *testing.T) {
	t.Parallel()
	pkg := pack(t, []entry{
		{name: "bin/", typ: tar.TypeDir, mode: 0o2775},
		{name: "bin/su", typ: tar.TypeReg, mode: 0o4755, body: "x"},
		symlink("bin/run", "../bin/./su"),
		reg("VERSION", "1.0\n"), reg("VERSION", "1.1\n"), // tar appends: the last wins
	})
	ist, err := unpack.Inspect(context.Background(), pkg, unpack.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	xst, err := unpack.Extract(context.Background(), pkg, out, unpack.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if ist != xst || ist.Entries != 5 || ist.Links != 1 || ist.Stripped != 2 {
		t.Fatalf("inspect %+v, extract %+v", ist, xst)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "bin", "run")); string(b) != "x" {
		t.Fatalf("link reads %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "VERSION")); string(b) != "1.1\n" {
		t.Fatalf("VERSION %q", b)
	}
	if fi, _ := os.Stat(filepath.Join(out, "bin", "su")); fi.Mode() != 0o755 {
		t.Fatalf("mode %s", fi.Mode())
	}
	if err := unpack.Sync(out); err != nil {
		t.Fatal(err)
	}
}

func TestNotATarGzIsBad(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "x.tar.gz")
	os.WriteFile(p, []byte("not gzip"), 0o644)
	if _, err := unpack.Inspect(context.Background(), p, unpack.Limits{}); !errors.Is(err, unpack.ErrBad) {
		t.Fatalf("inspect: %v", err)
	}
	// Truncated in the middle of a member.
	good := pack(t, []entry{reg("big", strings.Repeat("y", 1<<16))})
	b, _ := os.ReadFile(good)
	var raw bytes.Buffer
	zr, _ := gzip.NewReader(bytes.NewReader(b))
	raw.ReadFrom(zr)
	var cut bytes.Buffer
	zw := gzip.NewWriter(&cut)
	zw.Write(raw.Bytes()[:1<<15])
	zw.Close()
	os.WriteFile(p, cut.Bytes(), 0o644)
	if _, err := unpack.Inspect(context.Background(), p, unpack.Limits{}); !errors.Is(err, unpack.ErrBad) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("inspect truncated: %v", err)
	}
	if _, err := unpack.Extract(context.Background(), p, t.TempDir(), unpack.Limits{}); !errors.Is(err, unpack.ErrBad) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("extract truncated: %v", err)
	}
}
