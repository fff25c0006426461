package pgdump

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/jackc/pgx/v5"
)

// Dump describes one verified dump of a database.
type Dump struct {
	// File is the dump's base name, beside the manifest.
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Database is the name of the database on the server.
	Database string `json:"database"`
	// ServerVersion and Client (pg_dump's version line) at backup.
	ServerVersion string `json:"serverVersion"`
	Client        string `json:"client"`
	// Entries is how many entries pg_restore --list found in the dump.
	Entries int `json:"entries"`
	// Tables and their exact row counts, in the snapshot the dump holds.
	Tables []Table `json:"tables"`
}

// Table is one table and its rows.
type Table struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	Rows   int64  `json:"rows"`
}

// String is the table's name as people write it: schema.name.
func (t Table) String() string { return t.Schema + "." + t.Name }

// Ident is the table's quoted, schema-qualified name.
func (t Table) Ident() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// Rows is the total of the tables' rows.
func (d *Dump) Rows() int64 {
	var n int64
	for _, t := range d.Tables {
		n += t.Rows
	}
	return n
}

// tablesQuery lists the ordinary tables pg_dump dumps the data of: not the
// system's, not an extension's.
const tablesQuery = `
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2`

// Take dumps the database dsn names into file (custom format) and counts
// every table's rows in the snapshot the dump is taken from. pg_dump older
// than the server is refused before anything is written. The caller
// verifies the dump (Verify) before trusting it.
func (t Tools) Take(ctx context.Context, dsn, file string) (*Dump, error) {
	c, err := parse(dsn)
	if err != nil {
		return nil, err
	}
	db, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer db.Close(context.WithoutCancel(ctx))
	d := &Dump{File: filepath.Base(file), Database: c.cfg.Database}
	var num int
	if err := db.QueryRow(ctx, "SELECT current_setting('server_version'), current_setting('server_version_num')::int").Scan(&d.ServerVersion, &num); err != nil {
		return nil, fmt.Errorf("read the server's version: %s", c.redact(err.Error()))
	}
	if d.Client, err = t.checkClient(ctx, "pg_dump", num); err != nil {
		return nil, err
	}
	if _, err := t.bin("pg_restore"); err != nil {
		return nil, err
	}
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin: %s", c.redact(err.Error()))
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var snapshot string
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&snapshot); err != nil {
		return nil, fmt.Errorf("export a snapshot: %s", c.redact(err.Error()))
	}
	if d.Tables, err = count(ctx, tx); err != nil {
		return nil, fmt.Errorf("count rows: %s", c.redact(err.Error()))
	}
	if d.SHA256, d.Size, err = t.dumpTo(ctx, c, snapshot, file); err != nil {
		return nil, err
	}
	return d, nil
}

// count counts every table's rows, in q's snapshot.
func count(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}) ([]Table, error) {
	rows, err := q.Query(ctx, tablesQuery)
	if err != nil {
		return nil, err
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Table, error) {
		var t Table
		return t, r.Scan(&t.Schema, &t.Name)
	})
	if err != nil {
		return nil, err
	}
	for i := range tables {
		if err := q.QueryRow(ctx, "SELECT count(*) FROM "+tables[i].Ident()).Scan(&tables[i].Rows); err != nil {
			return nil, fmt.Errorf("%s: %w", tables[i].Ident(), err)
		}
	}
	return tables, nil
}

// dumpTo streams pg_dump's output into file through a digest.
func (t Tools) dumpTo(ctx context.Context, c conn, snapshot, file string) (string, int64, error) {
	bin, err := t.bin("pg_dump")
	if err != nil {
		return "", 0, err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", 0, fmt.Errorf("create dump: %w", err)
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, bin, "--format=custom", "--snapshot="+snapshot, "--no-password")
	cmd.Env = c.env(t)
	var stderr tail
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, fmt.Errorf("pg_dump: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return "", 0, fmt.Errorf("pg_dump: %w", err)
	}
	h := sha256.New()
	n, cerr := io.Copy(io.MultiWriter(f, h), out)
	if err := cmd.Wait(); err != nil {
		return "", 0, fmt.Errorf("pg_dump: %w: %s", err, c.redact(stderr.String()))
	}
	if cerr != nil {
		return "", 0, fmt.Errorf("write dump: %w", cerr)
	}
	if err := f.Sync(); err != nil {
		return "", 0, fmt.Errorf("sync dump: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", 0, fmt.Errorf("write dump: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
