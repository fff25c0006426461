package backup_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/services/backup"
)

// deployBadly does to the backed-up paths what a failed deploy might, and
// installs release 1.1 beside them.
func deployBadly(h *host) {
	h.write("releases/1.0/bin/app", "#!/bin/sh\necho patched\n", 0o755)
	os.Remove(h.path("releases/1.0/lib/data.txt"))
	h.write("releases/1.0/bin/stray", "left by the deploy", 0o755)
	h.mkdir("releases/1.0/plugins/new", 0o755)
	h.write("releases/1.0/plugins/new/p.so", "plugin", 0o644)
	h.link("/etc/passwd", "releases/1.0/app.conf")
	os.Chmod(h.path("releases/1.0/lib"), 0o700)
	h.write("shared/app.conf", "password=new\n", 0o644)
	h.mkdir("releases/1.1", 0o755)
	h.write("releases/1.1/app", "1.1", 0o755)
	h.link("releases/1.1", "current")
}

// backedUp is a listing without what the backup does not cover: the
// current link and release 1.1.
func backedUp(listing string) string {
	var keep []string
	for _, l := range strings.Split(listing, "\n") {
		if !strings.HasPrefix(l, "current ") && !strings.HasPrefix(l, "releases/1.1") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func TestRestoreBringsTheBackedUpPathsBackExactly(t *testing.T) {
	h := newHost(t)
	h.mustSucceed(events.ActionArchive)
	before := h.listing()
	deployBadly(h)
	out := h.mustSucceed(events.ActionRestore)
	after := h.listing()
	if backedUp(after) != backedUp(before) {
		t.Fatalf("after restore\n%s\nbacked up\n%s", after, before)
	}
	// What the deploy service owns, outside the backed-up paths, is left
	// to it (its roll-back runs before the restore).
	if l, _ := os.Readlink(h.path("current")); l != "releases/1.1" || !strings.Contains(after, "releases/1.1/app") {
		t.Fatalf("restore touched what it did not back up:\n%s", after)
	}
	// app, data.txt, the link, lib's mode and app.conf; stray, and plugins
	// with what it holds.
	if out.Output["restored"] != "5" || out.Output["removed"] != "4" || out.Output["unchanged"] != "4" || out.Output["version"] != "1.0" {
		t.Fatalf("output %v", out.Output)
	}
	if len(out.Report) != 2 || !out.Report[0].OK || out.Report[1].Name != "restore" || !out.Report[1].OK {
		t.Fatalf("report %+v", out.Report)
	}

	again := h.mustSucceed(events.ActionRestore)
	if again.Output["restored"] != "0" || again.Output["removed"] != "0" || again.Output["unchanged"] != "9" || h.listing() != after {
		t.Fatalf("second restore changed something: %v", again.Output)
	}
}

func TestRestoreRecreatesDeletedTrees(t *testing.T) {
	h := newHost(t)
	h.mustSucceed(events.ActionArchive)
	backedUp := h.listing()
	os.RemoveAll(h.path("releases"))
	os.RemoveAll(h.path("shared"))
	h.write("shared", "a file where a directory was", 0o644)
	out := h.mustSucceed(events.ActionRestore)
	if after := h.listing(); after != backedUp {
		t.Fatalf("after restore\n%s\nbacked up\n%s", after, backedUp)
	}
	if out.Output["restored"] != "9" {
		t.Fatalf("output %v", out.Output)
	}
}

func TestRestoreWhenNothingChangedChangesNothing(t *testing.T) {
	h := newHost(t)
	h.mustSucceed(events.ActionArchive)
	before := h.listing()
	out := h.mustSucceed(events.ActionRestore)
	if out.Output["restored"] != "0" || out.Output["removed"] != "0" || out.Output["unchanged"] != "9" {
		t.Fatalf("output %v", out.Output)
	}
	if h.listing() != before {
		t.Fatal("tree changed")
	}
}

func TestRestoreFromACorruptArchiveChangesNothing(t *testing.T) {
	h := newHost(t)
	h.mustSucceed(events.ActionArchive)
	deployBadly(h)
	damaged := h.listing()
	file := filepath.Join(h.backupDir(), backup.ArchiveFile)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := h.run(events.ActionRestore)
	if !out.Failed || out.Reason != backup.ReasonCorrupt || !strings.Contains(out.Error, "sha256") {
		t.Fatalf("outcome %+v", out)
	}
	if h.listing() != damaged {
		t.Fatal("restored from a corrupt backup")
	}
}

func TestRestoreWithoutABackupFails(t *testing.T) {
	h := newHost(t)
	// A backup that never completed has no manifest.
	os.MkdirAll(h.backupDir(), 0o700)
	os.WriteFile(filepath.Join(h.backupDir(), backup.ArchiveFile), []byte("partial"), 0o600)
	before := h.listing()
	out, _ := h.run(events.ActionRestore)
	if !out.Failed || out.Reason != backup.ReasonNoBackup {
		t.Fatalf("outcome %+v", out)
	}
	if h.listing() != before {
		t.Fatal("tree changed")
	}
}

// forge writes a backup whose manifest matches its archive, as an attacker
// who can write to the backup dir could, with the given entry names.
func forge(t *testing.T, h *host, paths []string, names ...string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	var entries []backup.Entry
	for _, n := range names {
		body := "forged\n"
		tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
		tw.Write([]byte(body))
		entries = append(entries, backup.Entry{Path: n, Type: backup.TypeFile, Mode: 0o644, Size: int64(len(body)), SHA256: sha([]byte(body))})
	}
	tw.Close()
	gz.Close()
	m := backup.Manifest{Format: backup.ManifestFormat, Saga: "s1", Target: "web-1", Version: "1.0", Paths: paths,
		Archive: backup.Archive{File: backup.ArchiveFile, SHA256: sha(buf.Bytes()), Size: int64(buf.Len())}, Entries: entries}
	mb, _ := json.Marshal(m)
	os.MkdirAll(h.backupDir(), 0o700)
	if err := os.WriteFile(filepath.Join(h.backupDir(), backup.ArchiveFile), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.backupDir(), backup.ManifestFile), mb, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRestoreRefusesEntriesOutsideTheRoot(t *testing.T) {
	for _, c := range []struct {
		paths []string
		names []string
	}{
		{[]string{"../escaped"}, []string{"../escaped"}},
		{[]string{"shared"}, []string{"shared/../../escaped"}},
		{[]string{filepath.Join(t.TempDir(), "escaped")}, []string{filepath.Join(t.TempDir(), "escaped")}},
		// Not below a directory of the backup: shared/ could be a link out.
		{[]string{"shared"}, []string{"shared/x/escaped"}},
		{[]string{"backups"}, []string{"backups"}},
	} {
		h := newHost(t)
		forge(t, h, c.paths, c.names...)
		before := h.listing()
		out, _ := h.run(events.ActionRestore)
		if !out.Failed || out.Reason != backup.ReasonUnsafe {
			t.Errorf("%v: outcome %+v", c.names, out)
		}
		if h.listing() != before {
			t.Errorf("%v: tree changed", c.names)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(h.root), "escaped")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%v: wrote outside the root", c.names)
		}
	}
}

func TestRestoreReplacesAFileThatIsOpen(t *testing.T) {
	h := newHost(t)
	h.mustSucceed(events.ActionArchive)
	h.write("releases/1.0/bin/app", "#!/bin/sh\necho patched\n", 0o755)
	f, err := os.Open(h.path("releases/1.0/bin/app"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h.mustSucceed(events.ActionRestore)
	// The reader (a running program) keeps the file it opened; the path
	// names the restored one.
	old, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	now, err := os.ReadFile(h.path("releases/1.0/bin/app"))
	if err != nil {
		t.Fatal(err)
	}
	if string(old) != "#!/bin/sh\necho patched\n" || string(now) != "#!/bin/sh\necho 1.0\n" {
		t.Fatalf("open file reads %q, path reads %q", old, now)
	}
	// No temporary file is left beside it.
	des, _ := os.ReadDir(h.path("releases/1.0/bin"))
	if len(des) != 1 {
		t.Fatalf("bin holds %v", des)
	}
}
