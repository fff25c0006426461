package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/backup"
)

// upshift backups list and show read what the backup service stored.
func TestBackupsListAndShow(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	_, js := natstest.Connect(t, srv)
	root := filepath.Join(t.TempDir(), "web-1")
	if err := os.MkdirAll(filepath.Join(root, "releases", "2.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "releases", "2.0", "app"), []byte("app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("releases/2.0", filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
	reg, err := targets.New(map[string]targets.Target{"web-1": {Root: root}}, root)
	if err != nil {
		t.Fatal(err)
	}
	x := &backup.Executor{Targets: reg, Store: &backup.Store{JS: js}}
	out, err := x.Execute(context.Background(), events.Command{Step: "st", Saga: "saga-7", Phase: events.Backup,
		Action: events.ActionArchive, Target: "web-1", Attempt: 1, Upgrade: events.Upgrade{Software: "billing"}}, func(string) {})
	if err != nil || out.Failed {
		t.Fatalf("%+v %v", out, err)
	}
	var list bytes.Buffer
	if err := run(context.Background(), []string{"backups", "list", "--nats", srv.URL()}, &list); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(list.String()), "\n"); len(lines) != 2 ||
		!strings.Contains(lines[1], " web-1 ") || !strings.Contains(lines[1], " billing ") || !strings.Contains(lines[1], " saga-7 ") {
		t.Fatalf("list:\n%s", list.String())
	}
	var show bytes.Buffer
	if err := run(context.Background(), []string{"backups", "show", "saga-7", "--target", "web-1", "--nats", srv.URL()}, &show); err != nil {
		t.Fatal(err)
	}
	var m backup.Manifest
	if err := json.Unmarshal(show.Bytes(), &m); err != nil || m.Saga != "saga-7" || m.Location != "objectstore://upshift-backups/web-1/saga-7/" {
		t.Fatalf("show: %v\n%s", err, show.String())
	}
	if err := run(context.Background(), []string{"backups", "show", "nope", "--target", "web-1", "--nats", srv.URL()}, &show); err == nil {
		t.Fatal("showed a backup that does not exist")
	}
}
