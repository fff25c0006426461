package deploy_test

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/unpack"
	"github.com/upshift/upshift/services/deploy"
)

func TestUnsafePackagesAreRefusedAndLeaveNothingBehind(t *testing.T) {
	ok := reg("VERSION", "1.0\n")
	many := []entry{ok}
	for i := range 8 {
		many = append(many, reg("f"+strings.Repeat("x", i), "x"))
	}
	for _, c := range []struct {
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
		{"hard link", []entry{ok, {name: "evil", typ: tar.TypeLink, link: "VERSION"}}, "hard link"},
		{"char device", []entry{ok, {name: "evil", typ: tar.TypeChar, mode: 0o666}}, "device"},
		{"block device", []entry{ok, {name: "evil", typ: tar.TypeBlock, mode: 0o666}}, "device"},
		{"fifo", []entry{ok, {name: "evil", typ: tar.TypeFifo, mode: 0o666}}, "fifo"},
		{"oversized", []entry{ok, reg("evil", strings.Repeat("x", 100))}, "more than 64 bytes"},
		{"too many files", many, "more than 8 entries"},
		{"fake release marker", []entry{ok, reg(deploy.MarkerFile, "sha256:0")}, "reserved"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHost(t, 0)
			h.exec.Limits = unpack.Limits{MaxSize: 64, MaxFiles: 8}
			url, digest := h.pack("app-1.0", c.entries)
			out, _ := h.run(command(events.ActionApply, "", "1.0", url, digest))
			if !out.Failed || out.Reason != deploy.ReasonUnsafePackage || !strings.Contains(out.Error, c.want) {
				t.Fatalf("outcome %+v, want unsafe_package with %q", out, c.want)
			}
			if r := h.releases(); len(r) != 0 {
				t.Fatalf("left in releases/: %v", r)
			}
			if h.current() != "" || h.calls() != nil {
				t.Fatal("switched or ran hooks")
			}
			filepath.WalkDir(h.dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Name() == "evil" {
					t.Errorf("%s was written", p)
				}
				return nil
			})
			if _, err := os.Lstat("/tmp/evil"); err == nil {
				t.Error("/tmp/evil was written")
			}
		})
	}
}

func TestSpecialBitsAreStrippedAndInsideLinksKept(t *testing.T) {
	h := newHost(t, 0)
	must(t, os.MkdirAll(filepath.Join(h.root, "shared"), 0o755))
	url, digest := h.pack("app-1.0", []entry{
		{name: "bin/", typ: tar.TypeDir, mode: 0o2775},
		{name: "bin/su", typ: tar.TypeReg, mode: 0o4755, body: "x"},
		symlink("bin/run", "../bin/./su"),
		dir("shared/"), reg("shared/own.yaml", "mine\n"),
	})
	out, _ := h.run(command(events.ActionApply, "", "1.0", url, digest))
	if out.Failed {
		t.Fatalf("outcome %+v", out)
	}
	rel := filepath.Join(h.root, "releases", "1.0")
	for name, want := range map[string]fs.FileMode{"bin/su": 0o755, "bin": fs.ModeDir | 0o775} {
		fi, err := os.Stat(filepath.Join(rel, name))
		must(t, err)
		if fi.Mode() != want {
			t.Errorf("%s: mode %s, want %s", name, fi.Mode(), want)
		}
	}
	if !strings.Contains(line(out.Report, "extract").Detail, "stripped from 2 entries") {
		t.Fatalf("extract line %q", line(out.Report, "extract").Detail)
	}
	if read(t, filepath.Join(rel, "bin", "run")) != "x" {
		t.Fatal("link inside the release not kept")
	}
	// The package brings its own shared/: it is not replaced by the link.
	if fi, err := os.Lstat(filepath.Join(rel, "shared")); err != nil || !fi.IsDir() {
		t.Fatalf("shared/ of the package replaced: %v", err)
	}
}

func TestNotATarGzIsABadPackage(t *testing.T) {
	h := newHost(t, 0)
	path := filepath.Join(h.dir, "app-1.0.tar.gz")
	must(t, os.WriteFile(path, []byte("not gzip"), 0o644))
	sum := sha256.Sum256([]byte("not gzip"))
	out, _ := h.run(command(events.ActionApply, "", "1.0", "file://"+path, "sha256:"+hex.EncodeToString(sum[:])))
	if !out.Failed || out.Reason != deploy.ReasonBadPackage || len(h.releases()) != 0 {
		t.Fatalf("outcome %+v, releases %v", out, h.releases())
	}
}
