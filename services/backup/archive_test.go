package backup_test

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/backup"
)

// tarball lists an archive's entries as "name type mode [content|link]".
func tarball(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		line := hdr.Name + " " + string(hdr.Typeflag) + " " + os.FileMode(hdr.Mode).String()
		if hdr.Typeflag == tar.TypeSymlink {
			line += " " + hdr.Linkname
		} else if hdr.Typeflag == tar.TypeReg {
			line += " " + strings.TrimSpace(string(b))
		}
		out = append(out, line)
	}
}

func TestArchiveWritesAVerifiedBackupWithItsManifest(t *testing.T) {
	h := newHost(t)
	before := time.Now().Add(-time.Second)
	out, progress := h.run(events.ActionArchive)
	if out.Failed {
		t.Fatalf("outcome %+v", out)
	}
	dir := h.backupDir()
	if dir != filepath.Join(h.root, "backups", "s1") || out.Output["backup"] != dir {
		t.Fatalf("backup at %s, output %v", dir, out.Output)
	}
	archive, err := os.ReadFile(filepath.Join(dir, backup.ArchiveFile))
	if err != nil {
		t.Fatal(err)
	}
	m, err := backup.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Saga != "s1" || m.Target != "web-1" || m.Version != "1.0" || m.Created.Before(before) ||
		m.Archive.SHA256 != sha(archive) || m.Archive.Size != int64(len(archive)) ||
		strings.Join(m.Paths, ",") != "releases/1.0,shared" {
		t.Fatalf("manifest %+v", m)
	}
	if out.Output["archive_sha256"] != sha(archive) || out.Output["version"] != "1.0" ||
		out.Output["entries"] != "9" || out.Output["bytes"] != strconv.Itoa(len(archive)) {
		t.Fatalf("output %v", out.Output)
	}

	var entries []string
	for _, e := range m.Entries {
		entries = append(entries, e.Path+" "+e.Type+" "+e.Mode.FileMode().String()+" "+e.SHA256+e.Link)
	}
	want := []string{
		"releases/1.0 dir -rwxr-xr-x ",
		"releases/1.0/app.conf symlink -rwxrwxrwx ../../shared/app.conf",
		"releases/1.0/bin dir -rwxr-xr-x ",
		"releases/1.0/bin/app file -rwxr-xr-x " + sha([]byte("#!/bin/sh\necho 1.0\n")),
		"releases/1.0/lib dir -rwxr-x--- ",
		"releases/1.0/lib/data.txt file -rw-r--r-- " + sha([]byte("data of 1.0\n")),
		"releases/1.0/lib/empty dir -rwxr-x--- ",
		"shared dir -rwxr-xr-x ",
		"shared/app.conf file -rw-r----- " + sha([]byte("password=old\n")),
	}
	if got := strings.Join(entries, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("manifest entries\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
	if m.Entries[3].Size != int64(len("#!/bin/sh\necho 1.0\n")) {
		t.Fatalf("size of %s: %d", m.Entries[3].Path, m.Entries[3].Size)
	}

	// The archive itself, read independently: paths relative to the root,
	// links stored as written, modes kept.
	got := strings.Join(tarball(t, filepath.Join(dir, backup.ArchiveFile)), "\n")
	for _, want := range []string{
		"releases/1.0/ 5 -rwxr-xr-x",
		"releases/1.0/app.conf 2 -rwxrwxrwx ../../shared/app.conf",
		"releases/1.0/bin/app 0 -rwxr-xr-x #!/bin/sh\necho 1.0",
		"shared/app.conf 0 -rw-r----- password=old",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("archive lacks %q:\n%s", want, got)
		}
	}
	if len(out.Report) != 2 || out.Report[0].Name != "archive" || out.Report[1].Name != "verification" ||
		!out.Report[0].OK || !out.Report[1].OK {
		t.Fatalf("report %+v", out.Report)
	}
	if strings.Join(progress, "|") == "" || !strings.Contains(strings.Join(progress, "|"), "verifying") {
		t.Fatalf("progress %v", progress)
	}
}

func TestArchiveTwiceKeepsTheFirstBackup(t *testing.T) {
	h := newHost(t)
	first := h.mustSucceed(events.ActionArchive)
	file := filepath.Join(h.backupDir(), backup.ArchiveFile)
	st1, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	// A redelivery, or the next attempt, finds the verified backup.
	out, err := h.exec.Execute(t.Context(), command(events.ActionArchive, 2), func(string) {})
	if err != nil || out.Failed {
		t.Fatalf("outcome %+v, err %v", out, err)
	}
	st2, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if out.Output["archive_sha256"] != first.Output["archive_sha256"] || !os.SameFile(st1, st2) || !st1.ModTime().Equal(st2.ModTime()) {
		t.Fatalf("archive rewritten: %v then %v", first.Output, out.Output)
	}
	if !strings.Contains(out.Report[0].Detail, "kept the backup made earlier") {
		t.Fatalf("report %+v", out.Report)
	}
}

func TestArchiveOfADamagedEarlierBackupArchivesAgain(t *testing.T) {
	h := newHost(t)
	h.mustSucceed(events.ActionArchive)
	file := filepath.Join(h.backupDir(), backup.ArchiveFile)
	if err := os.WriteFile(file, []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := h.mustSucceed(events.ActionArchive)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if sha(b) != out.Output["archive_sha256"] || len(tarball(t, file)) != 9 {
		t.Fatalf("backup not made again: %v", out.Output)
	}
}

func TestArchiveWithNothingInstalledFails(t *testing.T) {
	for name, breakIt := range map[string]func(h *host){
		"no current link":   func(h *host) { os.Remove(h.path("current")) },
		"dangling current":  func(h *host) { os.RemoveAll(h.path("releases/1.0")) },
		"current elsewhere": func(h *host) { h.link(t.TempDir(), "current") },
	} {
		t.Run(name, func(t *testing.T) {
			h := newHost(t)
			breakIt(h)
			out, _ := h.run(events.ActionArchive)
			want := backup.ReasonNothingInstalled
			if name == "current elsewhere" {
				want = backup.ReasonBadConfig
			}
			if !out.Failed || out.Reason != want || len(out.Report) != 1 || out.Report[0].OK {
				t.Fatalf("outcome %+v", out)
			}
			if _, err := os.Stat(h.backupDir()); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("backup dir left: %v", err)
			}
		})
	}
}

func TestArchiveIncludesConfiguredPathsThatExist(t *testing.T) {
	h := newHostWith(t, "{paths: [etc/app.env, shared/app.conf, missing]}")
	h.mkdir("etc", 0o755)
	h.write("etc/app.env", "LEVEL=info\n", 0o600)
	out := h.mustSucceed(events.ActionArchive)
	m, err := backup.ReadManifest(h.backupDir())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(m.Paths, ",") != "releases/1.0,etc/app.env,shared/app.conf" {
		t.Fatalf("paths %v", m.Paths)
	}
	got := strings.Join(tarball(t, filepath.Join(h.backupDir(), backup.ArchiveFile)), "\n")
	for _, want := range []string{"etc/app.env 0 -rw------- LEVEL=info", "shared/app.conf 0 -rw-r----- password=old"} {
		if !strings.Contains(got, want) {
			t.Errorf("archive lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "shared/ ") {
		t.Errorf("archive holds more of shared/ than configured:\n%s", got)
	}
	if !strings.Contains(out.Report[0].Detail, "not backed up: missing") {
		t.Fatalf("report %+v", out.Report)
	}
}

// Paths that leave the root are refused when the registry is loaded
// (pkg/targets); the ones deploy manages are refused here.
func TestArchiveRefusesPathsManagedByDeploy(t *testing.T) {
	for _, paths := range []string{"[releases]", "[current]", "[backups/x]", "[.]"} {
		h := newHostWith(t, "{paths: "+paths+"}")
		out, _ := h.run(events.ActionArchive)
		if !out.Failed || out.Reason != backup.ReasonBadConfig {
			t.Errorf("paths %s: outcome %+v", paths, out)
		}
	}
}

func TestArchiveFailureLeavesNoPartialBackup(t *testing.T) {
	cases := map[string]struct {
		settings string
		breakIt  func(t *testing.T, h *host)
		reason   string
	}{
		"a fifo in a backed-up path": {"{paths: [shared]}", func(t *testing.T, h *host) {
			if err := syscall.Mkfifo(h.path("shared/zz.fifo"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, backup.ReasonUnsupportedFile},
		"a socket in a backed-up path": {"{paths: [shared]}", func(t *testing.T, h *host) {
			fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer syscall.Close(fd)
			if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: h.path("shared/zz.sock")}); err != nil {
				t.Fatal(err)
			}
		}, backup.ReasonUnsupportedFile},
		"an unreadable file": {"{paths: [shared]}", func(t *testing.T, h *host) {
			if os.Geteuid() == 0 {
				t.Skip("root reads any file")
			}
			os.Chmod(h.path("shared/app.conf"), 0)
			t.Cleanup(func() { os.Chmod(h.path("shared/app.conf"), 0o600) })
		}, backup.ReasonArchiveFailed},
		"a file where the backup dir goes": {"", func(t *testing.T, h *host) {}, backup.ReasonArchiveFailed},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			settings := c.settings
			if settings == "" {
				file := filepath.Join(t.TempDir(), "backups")
				if err := os.WriteFile(file, []byte("in the way"), 0o644); err != nil {
					t.Fatal(err)
				}
				settings = "{paths: [shared], dir: " + file + "}"
			}
			h := newHostWith(t, settings)
			c.breakIt(t, h)
			out, _ := h.run(events.ActionArchive)
			if !out.Failed || out.Reason != c.reason {
				t.Fatalf("outcome %+v", out)
			}
			if _, err := os.Lstat(h.backupDir()); !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				t.Fatalf("partial backup left: %v", err)
			}
		})
	}
}

func TestTargetsSharingABackupDirAreRefusedAtLoad(t *testing.T) {
	dir := t.TempDir()
	_, err := targets.Parse([]byte("targets: {web-1: {root: a, backup: {dir: "+dir+"}}, web-2: {root: b, backup: {dir: "+dir+"}}}"), dir)
	if err == nil || !strings.Contains(err.Error(), "share the backup directory") {
		t.Fatalf("err %v", err)
	}
}
