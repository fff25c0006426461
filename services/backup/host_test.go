package backup_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/backup"
)

// host is a target root with release 1.0 installed and configuration under
// shared/.
type host struct {
	t    *testing.T
	root string
	reg  *targets.Registry
	exec *backup.Executor
}

func newHost(t *testing.T) *host { return newHostWith(t, "{paths: [shared]}") }

// newHostWith sets the target's backup settings, in YAML.
func newHostWith(t *testing.T, backupSettings string) *host {
	return newHostOf(t, "backup: "+backupSettings)
}

// newHostOf sets the target's settings beyond its root, in YAML.
func newHostOf(t *testing.T, settings string) *host {
	t.Helper()
	root := filepath.Join(t.TempDir(), "web-1")
	h := &host{t: t, root: root}
	h.mkdir("releases/1.0/bin", 0o755)
	h.mkdir("releases/1.0/lib", 0o750)
	h.mkdir("releases/1.0/lib/empty", 0o750)
	h.mkdir("shared", 0o755)
	h.write("releases/1.0/bin/app", "#!/bin/sh\necho 1.0\n", 0o755)
	h.write("releases/1.0/lib/data.txt", "data of 1.0\n", 0o644)
	h.write("shared/app.conf", "password=old\n", 0o640)
	h.link("../../shared/app.conf", "releases/1.0/app.conf")
	h.link("releases/1.0", "current")
	reg, err := targets.Parse([]byte("targets: {web-1: {root: "+root+", "+settings+"}}"), root)
	if err != nil {
		t.Fatal(err)
	}
	h.reg, h.exec = reg, &backup.Executor{Targets: reg}
	return h
}

func (h *host) path(rel string) string { return filepath.Join(h.root, filepath.FromSlash(rel)) }

func (h *host) mkdir(rel string, mode fs.FileMode) {
	h.t.Helper()
	if err := os.MkdirAll(h.path(rel), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Chmod(h.path(rel), mode); err != nil {
		h.t.Fatal(err)
	}
}

func (h *host) write(rel, content string, mode fs.FileMode) {
	h.t.Helper()
	if err := os.WriteFile(h.path(rel), []byte(content), mode); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Chmod(h.path(rel), mode); err != nil {
		h.t.Fatal(err)
	}
}

func (h *host) link(dest, rel string) {
	h.t.Helper()
	os.Remove(h.path(rel))
	if err := os.Symlink(dest, h.path(rel)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *host) target() targets.Target {
	t, err := h.reg.Get("web-1")
	if err != nil {
		h.t.Fatal(err)
	}
	return t
}

// backupDir is where the backup of saga s1 goes.
func (h *host) backupDir() string { return backup.Dir(h.target(), "s1") }

func command(action events.Action, attempt int) events.Command {
	return events.Command{Step: events.StepID("s1", events.Backup, action, "web-1", attempt), Saga: "s1",
		Phase: events.Backup, Action: action, Target: "web-1", Attempt: attempt,
		Upgrade: events.Upgrade{Kind: "Upgrade", Software: "app", From: "1.0", To: "1.1"}}
}

// run executes action and returns the outcome and the progress messages.
func (h *host) run(action events.Action) (phase.Outcome, []string) {
	h.t.Helper()
	var progress []string
	out, err := h.exec.Execute(context.Background(), command(action, 1), func(m string) { progress = append(progress, m) })
	if err != nil {
		h.t.Fatalf("%s: %v", action, err)
	}
	return out, progress
}

func (h *host) mustSucceed(action events.Action) phase.Outcome {
	h.t.Helper()
	out, _ := h.run(action)
	if out.Failed {
		h.t.Fatalf("%s failed: %s: %s (report %+v)", action, out.Reason, out.Error, out.Report)
	}
	return out
}

// listing describes everything under the root but the backups, with modes
// and content hashes, one line per entry.
func (h *host) listing() string {
	h.t.Helper()
	var lines []string
	err := filepath.WalkDir(h.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == h.target().Backup.Dir {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(h.root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %s", rel, info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			line += " -> " + l
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += " " + sha(b)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
