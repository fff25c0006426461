package e2e_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upshift/upshift/cmd/upshift/internal/demo"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/backup"
	"github.com/upshift/upshift/services/coordinator"
)

// The application's database before an upgrade: tables with constraints
// and rows.
const appSchema = `
CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL UNIQUE, tier text NOT NULL DEFAULT 'basic' CHECK (tier IN ('basic', 'gold')));
CREATE TABLE orders (id bigserial PRIMARY KEY, customer int NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
	total numeric(10,2) NOT NULL CHECK (total >= 0), placed date NOT NULL);
CREATE INDEX orders_placed ON orders (placed);
INSERT INTO customers (email, tier) SELECT 'c' || i || '@example.com', CASE WHEN i % 5 = 0 THEN 'gold' ELSE 'basic' END FROM generate_series(1, 200) i;
INSERT INTO orders (customer, total, placed) SELECT 1 + i % 200, (i % 97) * 1.25, date '2024-01-01' + i % 365 FROM generate_series(1, 3000) i;`

// The migration 1.2 ships: it alters a table, deletes rows and adds a
// table, all of which the roll-back must undo.
const migration12 = `-- +goose Up
ALTER TABLE orders ADD COLUMN currency char(3) NOT NULL DEFAULT 'EUR';
ALTER TABLE customers DROP COLUMN tier;
DELETE FROM orders WHERE placed < date '2024-06-01';
DELETE FROM customers WHERE id > 150;
CREATE TABLE invoices (id int PRIMARY KEY, order_id bigint REFERENCES orders(id));
INSERT INTO invoices SELECT id, id FROM orders WHERE id < 100;
-- +goose Down
DROP TABLE invoices;
`

// withDatabase declares the test's database for the demo target.
func withDatabase(t *testing.T, url string) func(*targets.Target) {
	dsn := filepath.Join(t.TempDir(), "app.dsn")
	if err := os.WriteFile(dsn, []byte(url), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(tg *targets.Target) { tg.Databases = []targets.Database{{Name: "app", DSNFile: dsn}} }
}

// withMigrations repacks a demo artifact with files added (migrations/...),
// beside it, so it comes from an allowed source.
func withMigrations(t *testing.T, a demo.Artifact, files map[string]string) demo.Artifact {
	t.Helper()
	in, err := os.Open(a.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	gr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(filepath.Dir(a.Path), fmt.Sprintf("demo-app-%s-migrations-%s.tar.gz", a.Version, t.Name()))
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	h := sha256.New()
	gz := gzip.NewWriter(io.MultiWriter(out, h))
	tw := tar.NewWriter(gz)
	tr := tar.NewReader(gr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "migrations/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: "migrations/" + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return demo.Artifact{Version: a.Version, Path: path, URL: "file://" + path, Digest: "sha256:" + hex.EncodeToString(h.Sum(nil))}
}

// appTree hashes every file, link and directory under dir, but the backups.
func appTree(t *testing.T, root, skip string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(&b, "%s %s", rel, fi.Mode())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", l)
		case fi.Mode().IsRegular():
			c, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %x", sha256.Sum256(c))
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// upgradeWithMigration is the request from 1.1 to a 1.2 (built unhealthy)
// that ships migration12.
func upgradeWithMigration(t *testing.T, r *rig) spec.Request {
	a := withMigrations(t, r.d.Artifacts["1.2"], map[string]string{"0001_orders_currency.sql": migration12})
	req := r.d.Request("1.1", "1.2")
	req.Spec.Artifact = spec.Artifact{URL: a.URL, Digest: a.Digest}
	return req
}

// An upgrade whose migration alters a table and deletes rows, then fails
// verification: the roll-back brings back every row and the schema, checked
// by query (EXCEPT both ways on every table, the catalogs for the schema),
// and the application's tree byte for byte.
func TestRollBackRestoresTheDatabaseRowByRow(t *testing.T) {
	endToEnd(t)
	url := pgtest.Database(t)
	pgtest.Exec(t, url, appSchema)
	r := newRigWith(t, "1.1", coordinator.Policy{}, withDatabase(t, url))
	// The application's tree: the release in service (the root also holds
	// logs, a pid file and the release rolled back from, kept as such).
	before, files := pgtest.Capture(t, url), appTree(t, r.d.Target.Release("1.1"), "")

	id, end := r.run(upgradeWithMigration(t, r))
	if end.Kind != string(saga.StateRolledBack) {
		t.Fatalf("saga %s ended %s: %s", id, end.Kind, end.Reason)
	}
	v, err := r.s.Client.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var migrated, restored bool
	for _, st := range v.Saga.Steps {
		migrated = migrated || st.Action == events.ActionApply && st.Output["schema_before"] == "0" && st.Output["schema_after"] == "1"
		restored = restored || st.Action == events.ActionRestore && st.Status == saga.StepSucceeded && st.Output["databases"] == "1"
	}
	if !migrated || !restored {
		t.Fatalf("steps %+v", v.Saga.Steps)
	}
	pgtest.Same(t, url, before)
	if got := appTree(t, r.d.Target.Release("1.1"), ""); got != files {
		t.Fatalf("the application's tree differs after the roll-back:\n%s\nwant\n%s", got, files)
	}
	if v := r.serving(); v != "1.1" {
		t.Fatalf("serving %s", v)
	}
}

// A corrupted backup object: the restore refuses before touching anything,
// the saga ends rollback_failed, and the notice says what a human must do
// and where the backup is.
func TestACorruptBackupEndsRollbackFailedAndSaysWhatToDo(t *testing.T) {
	endToEnd(t)
	url := pgtest.Database(t)
	pgtest.Exec(t, url, appSchema)
	r := newRigWith(t, "1.1", coordinator.Policy{}, withDatabase(t, url))
	id := r.submit(upgradeWithMigration(t, r))
	r.reach(id, saga.StateVerifying)
	migrated := pgtest.Capture(t, url)
	// The backup is in the Object Store: a byte flipped in the stored dump.
	ctx := context.Background()
	obs, err := r.s.JS.ObjectStore(ctx, backup.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	dump := "demo/" + id + "/db-app.dump"
	b, err := obs.GetBytes(ctx, dump)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x20
	if _, err := obs.PutBytes(ctx, dump, b); err != nil {
		t.Fatal(err)
	}
	_, end := r.end(id)
	if end.Kind != string(saga.StateRollbackFailed) || !strings.Contains(end.Reason, "a human must restore it from another backup than "+backup.Dir(r.d.Target, id)) {
		t.Fatalf("saga %s ended %s: %s", id, end.Kind, end.Reason)
	}
	pgtest.Same(t, url, migrated) // untouched
	natstest.Eventually(t, natstest.Patience, "the teams told what to do", func() bool {
		for _, n := range natstest.ReadEvents[events.Notice](t, r.s.JS, events.StreamNotify, "upshift.notify.*."+id+".>", events.TypeNotice) {
			if n.Kind == string(saga.StateRollbackFailed) && strings.Contains(n.Event.Reason, "a human must") && strings.Contains(n.Event.Reason, "dump corrupt") {
				return true
			}
		}
		return false
	})
}
