package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/services/backup"
)

// restoreBy is a command of the restore by hand r1 that names the backup of
// saga s1 (events.Upgrade.Backup).
func restoreBy(action events.Action, compensates string) events.Command {
	cmd := command(action, 1)
	cmd.Saga, cmd.Step, cmd.Compensates = "r1", "r1.backup."+string(action), compensates
	cmd.Upgrade = events.Upgrade{Kind: "Maintenance", Software: "app", Actions: []string{"restore"}, Backup: "s1"}
	return cmd
}

func (h *host) exec1(cmd events.Command) (out struct {
	Failed         bool
	Reason, Detail string
	Output         map[string]string
}) {
	h.t.Helper()
	o, err := h.exec.Execute(context.Background(), cmd, func(string) {})
	if err != nil {
		h.t.Fatalf("%s: %v", cmd.Step, err)
	}
	out.Failed, out.Reason, out.Output = o.Failed, o.Reason, o.Output
	if len(o.Report) > 0 {
		out.Detail = o.Report[0].Detail
	}
	return out
}

// inService is a listing without release 1.0, which the restore by hand
// put back and which its safety backup, of the release in service, does
// not hold.
func inService(listing string) string {
	var keep []string
	for _, l := range strings.Split(listing, "\n") {
		if !strings.HasPrefix(l, "releases/1.0") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// A restore by hand checks and restores the backup of the saga it names,
// keeps it from retention while it backs up what it replaces, and its
// compensation restores its own backup, not the named one.
func TestARestoreByHandRestoresTheNamedSagasBackup(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"objectstore", "dir"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			h := newHost(t)
			if store == "objectstore" {
				_, js := natstest.Start(t)
				h.exec.Store = &backup.Store{JS: js}
			}
			// Keep one: the safety backup would make s1's the one too many.
			h.exec.Keep, h.exec.Ended = 1, func(context.Context, string) (bool, error) { return true, nil }
			h.mustSucceed(events.ActionArchive) // s1, of release 1.0 as it was
			atBackup := h.listing()
			deployBadly(h)
			now := h.listing()

			if out := h.exec1(restoreBy(events.ActionCheck, "")); out.Failed {
				t.Fatalf("check: %+v", out)
			}
			if out := h.exec1(restoreBy(events.ActionArchive, "")); out.Failed {
				t.Fatalf("safety backup: %+v", out)
			}
			if h.listing() != now {
				t.Fatal("the check or the safety backup changed the target")
			}
			if out := h.exec1(restoreBy(events.ActionRestore, "")); out.Failed || out.Output["version"] != "1.0" {
				t.Fatalf("restore: %+v", out)
			}
			if got := backedUp(h.listing()); got != backedUp(atBackup) {
				t.Fatalf("restored\n%s\nwant\n%s", got, backedUp(atBackup))
			}
			// Undone: the compensation restores r1's own backup, of what
			// was in service (release 1.1 and shared/), not the named one.
			if out := h.exec1(restoreBy(events.ActionRestore, "r1.backup.archive")); out.Failed || out.Output["version"] != "1.1" {
				t.Fatalf("compensation: %+v", out)
			}
			if got, want := inService(h.listing()), inService(now); got != want || got == inService(atBackup) {
				t.Fatalf("after the compensation\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// The check fails, with nothing touched, for a saga with no backup, a
// backup of other software, or a damaged one.
func TestARestoreByHandsCheckRefusesABackupItCannotRestore(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, reason string
		spoil        func(h *host, cmd *events.Command)
	}{
		{"no backup", backup.ReasonNoBackup, func(_ *host, cmd *events.Command) { cmd.Upgrade.Backup = "s9" }},
		{"other software", backup.ReasonNoBackup, func(_ *host, cmd *events.Command) { cmd.Upgrade.Software = "other" }},
		{"damaged", backup.ReasonCorrupt, func(h *host, _ *events.Command) {
			must(h.t, os.WriteFile(filepath.Join(h.backupDir(), backup.ArchiveFile), []byte("not a tarball"), 0o600))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHost(t)
			h.mustSucceed(events.ActionArchive)
			cmd := restoreBy(events.ActionCheck, "")
			tc.spoil(h, &cmd)
			before := h.listing()
			if out := h.exec1(cmd); !out.Failed || out.Reason != tc.reason {
				t.Fatalf("check: %+v, want %s", out, tc.reason)
			}
			if h.listing() != before {
				t.Fatal("the check touched the target")
			}
		})
	}
}
