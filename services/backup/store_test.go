package backup_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/services/backup"
)

// A backup kept in the Object Store leaves nothing on the host's disk, and
// restores on another host (another root, nothing local) exactly.
func TestObjectStoreBackupRestoresOnAnotherHost(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t)
	store := &backup.Store{JS: js}
	a := newHost(t)
	a.exec.Store = store
	want := a.listing()
	out := a.mustSucceed(events.ActionArchive)
	if out.Output["backup"] != "objectstore://upshift-backups/web-1/s1/" {
		t.Fatalf("output %v", out.Output)
	}
	if _, err := os.Stat(a.backupDir()); !os.IsNotExist(err) {
		t.Fatalf("the local copy is still there: %v", err)
	}
	m, err := store.Manifest(context.Background(), "web-1", "s1")
	if err != nil || m.Location != out.Output["backup"] || m.Software != "app" {
		t.Fatalf("manifest %+v: %v", m, err)
	}
	// Archived again (a redelivery): the stored backup is kept.
	if again := a.mustSucceed(events.ActionArchive); again.Output["archive_sha256"] != out.Output["archive_sha256"] ||
		!strings.HasPrefix(again.Report[0].Detail, "kept the backup made earlier") {
		t.Fatalf("archived anew: %v %+v", again.Output, again.Report)
	}

	b := newHost(t) // another host: the same target, another disk
	b.exec.Store = store
	b.write("shared/app.conf", "password=new\n", 0o600)
	must(t, os.RemoveAll(b.path("releases/1.0/lib")))
	b.mustSucceed(events.ActionRestore)
	if got := b.listing(); got != want {
		t.Fatalf("restored on another host:\n%s\nwant\n%s", got, want)
	}
	if _, err := os.Stat(b.backupDir()); !os.IsNotExist(err) {
		t.Fatalf("the download is left behind: %v", err)
	}
}

// A stored object whose content differs from the manifest (a flipped byte)
// is refused before anything is touched.
func TestObjectStoreCorruptObjectIsRefused(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t)
	h := newHost(t)
	h.exec.Store = &backup.Store{JS: js}
	h.mustSucceed(events.ActionArchive)
	ctx := context.Background()
	obs, err := js.ObjectStore(ctx, backup.DefaultBucket)
	must(t, err)
	b, err := obs.GetBytes(ctx, "web-1/s1/"+backup.ArchiveFile)
	must(t, err)
	b[len(b)/2] ^= 1
	_, err = obs.PutBytes(ctx, "web-1/s1/"+backup.ArchiveFile, b)
	must(t, err)
	h.write("shared/app.conf", "password=new\n", 0o600)
	changed := h.listing()
	out, _ := h.run(events.ActionRestore)
	if !out.Failed || out.Reason != backup.ReasonCorrupt {
		t.Fatalf("restored from a corrupt object: %+v", out)
	}
	if got := h.listing(); got != changed {
		t.Fatal("the target was touched")
	}
}

// Retention keeps the newest N backups of a target and software, and never
// one of a saga that is not over, however old.
func TestRetentionKeepsNAndRunningSagas(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"objectstore", "dir"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			_, js := natstest.Start(t)
			ctx := context.Background()
			must(t, streams.Ensure(ctx, js, streams.Config{}, events.StreamEvents))
			h := newHost(t)
			if store == "objectstore" {
				h.exec.Store = &backup.Store{JS: js}
			}
			h.exec.Keep, h.exec.Ended = 2, backup.EndedFromEvents(js)
			announce := func(saga, state string) {
				_, err := js.Publish(ctx, events.SagaSubject(saga, state), []byte("{}"))
				must(t, err)
			}
			// s1: running (requested, no end); s2, s3, s4: over; s5 of
			// other software; s6: no events left (expired): over.
			sagas := []struct{ id, software, state string }{
				{"s1", "app", "backing_up"}, {"s2", "app", "succeeded"}, {"s3", "app", "rolled_back"},
				{"s5", "other", "succeeded"}, {"s6", "app", ""}, {"s4", "app", "succeeded"},
			}
			for _, s := range sagas {
				if s.state != "" {
					announce(s.id, "requested")
				}
				if s.state != "backing_up" && s.state != "" {
					announce(s.id, s.state)
				}
				cmd := command(events.ActionArchive, 1)
				cmd.Saga, cmd.Step, cmd.Upgrade.Software = s.id, s.id+".backup", s.software
				out, err := h.exec.Execute(ctx, cmd, func(string) {})
				if err != nil || out.Failed {
					t.Fatalf("%s: %+v %v", s.id, out, err)
				}
				time.Sleep(10 * time.Millisecond) // distinct creation times
			}
			// Newest first: s4, s6 kept (the newest two of app); s3, s2
			// removed; s1 kept (running); s5 kept (other software).
			var left []string
			if store == "objectstore" {
				ms, err := h.exec.Store.List(ctx, "web-1")
				must(t, err)
				for _, m := range ms {
					left = append(left, m.Saga)
				}
			} else {
				des, err := os.ReadDir(h.target().Backup.Dir)
				must(t, err)
				for _, de := range des {
					left = append(left, de.Name())
				}
			}
			slices.Sort(left)
			if !slices.Equal(left, []string{"s1", "s4", "s5", "s6"}) {
				t.Fatalf("left %v", left)
			}
		})
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
