package backup_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/services/backup"
)

// newDBHost is a host whose target declares one database, "app", seeded
// with tables, constraints and rows; it returns the database's URL.
func newDBHost(t *testing.T) (*host, string) {
	t.Helper()
	url := pgtest.Database(t)
	dsn := filepath.Join(t.TempDir(), "app.dsn")
	if err := os.WriteFile(dsn, []byte(url), 0o600); err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, url, `CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL UNIQUE);
		CREATE TABLE stock (item int REFERENCES items(id), qty int CHECK (qty >= 0));
		INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 40) i;
		INSERT INTO stock SELECT 1 + i % 40, i FROM generate_series(1, 120) i;`)
	return newHostOf(t, "backup: {paths: [shared]}, databases: [{name: app, dsnFile: "+dsn+"}]"), url
}

// The backup holds a verified dump of the database with every table's row
// count; the restore brings files and database back, proven by the counts,
// and the database is then equal to before by query.
func TestBackupAndRestoreADatabase(t *testing.T) {
	t.Parallel()
	h, url := newDBHost(t)
	before, files := pgtest.Capture(t, url), h.listing()
	out := h.mustSucceed(events.ActionArchive)
	m, err := backup.ReadManifest(h.backupDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Databases) != 1 || m.Databases[0].Name != "app" || m.Databases[0].Rows() != 160 || m.Databases[0].Entries == 0 ||
		out.Output["databases"] != "1" || len(out.Report) != 4 || !strings.Contains(out.Report[2].Detail, "2 tables, 160 rows") {
		t.Fatalf("manifest %+v, outcome %+v", m.Databases, out)
	}
	all := strings.Join([]string{out.Error, out.Report[2].Detail, out.Report[3].Detail}, " ")
	if strings.Contains(all, url) {
		t.Fatalf("the DSN is in the outcome: %s", all)
	}
	// Again: the backup made earlier is kept, and verified again.
	if again := h.mustSucceed(events.ActionArchive); !strings.Contains(again.Report[0].Detail, "kept") || len(again.Report) != 3 {
		t.Fatalf("again %+v", again.Report)
	}

	h.write("shared/app.conf", "password=new\n", 0o640)
	pgtest.Exec(t, url, `ALTER TABLE stock ADD COLUMN note text; DELETE FROM stock WHERE qty > 60; CREATE TABLE extra (x int)`)
	out = h.mustSucceed(events.ActionRestore)
	if !strings.Contains(out.Report[len(out.Report)-1].Detail, "every table's row count equals the backup's") {
		t.Fatalf("report %+v", out.Report)
	}
	pgtest.Same(t, url, before)
	if got := h.listing(); got != files {
		t.Fatalf("files\n%s\nwant\n%s", got, files)
	}
}

// A flipped byte in the dump: the restore refuses before touching the files
// or the database, and says what a human must do.
func TestACorruptDumpRestoresNothing(t *testing.T) {
	t.Parallel()
	h, url := newDBHost(t)
	h.mustSucceed(events.ActionArchive)
	h.write("shared/app.conf", "password=new\n", 0o640)
	pgtest.Exec(t, url, `DELETE FROM stock`)
	after, files := pgtest.Capture(t, url), h.listing()
	file := filepath.Join(h.backupDir(), "db-app.dump")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0x40
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := h.run(events.ActionRestore)
	if !out.Failed || out.Reason != backup.ReasonCorrupt || !strings.Contains(out.Error, "nothing was touched") ||
		!strings.Contains(out.Error, "a human must") {
		t.Fatalf("outcome %+v", out)
	}
	pgtest.Same(t, url, after)
	if got := h.listing(); got != files {
		t.Fatalf("files changed\n%s\nwant\n%s", got, files)
	}
}

// A backup whose client tools are missing fails with the reason, and leaves
// no partial backup.
func TestNoClientToolsFailTheBackup(t *testing.T) {
	t.Parallel()
	h, _ := newDBHost(t)
	h.exec.Tools.Dir = t.TempDir()
	out, _ := h.run(events.ActionArchive)
	if !out.Failed || out.Reason != backup.ReasonDatabaseClient || !strings.Contains(out.Error, "pg_dump") {
		t.Fatalf("outcome %+v", out)
	}
	if _, err := os.Stat(h.backupDir()); !os.IsNotExist(err) {
		t.Fatalf("a partial backup is left: %v", err)
	}
}
