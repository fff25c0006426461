package pgdump

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Suffixes of the databases a restore works with beside the live one.
const (
	freshSuffix = "_upshift_new"
	oldSuffix   = "_upshift_old"
)

// Restored says what a restore did.
type Restored struct {
	Database string
	Tables   int
	Rows     int64
	Duration time.Duration
}

// Restore puts the database dsn names back to the dump in file: it checks
// the dump's digest, restores it into a fresh database in one transaction,
// compares every table's rows with d's, and only then swaps the fresh
// database in for the live one, ending the sessions connected to it. It
// needs a role that may create databases and owns the live one (or a
// superuser), and PostgreSQL 13 or later. Whatever fails before the swap
// leaves the live database as it was; a restore run again after an
// interruption starts over and finishes the job.
func (t Tools) Restore(ctx context.Context, dsn, file string, d *Dump) (*Restored, error) {
	start := time.Now()
	c, err := parse(dsn)
	if err != nil {
		return nil, err
	}
	if err := Digest(file, d); err != nil {
		return nil, err
	}
	live := c.cfg.Database
	fresh, old := derived(live, freshSuffix), derived(live, oldSuffix)
	admin, err := c.admin(ctx)
	if err != nil {
		return nil, err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	exec := func(sql string, args ...any) error {
		if _, err := admin.Exec(ctx, sql, args...); err != nil {
			return fmt.Errorf("%s: %s", strings.Fields(sql)[0]+" "+strings.Fields(sql)[1], c.redact(err.Error()))
		}
		return nil
	}
	props, err := properties(ctx, admin, live, old)
	if err != nil {
		return nil, fmt.Errorf("read the database's properties: %s", c.redact(err.Error()))
	}
	if err := exec("DROP DATABASE IF EXISTS " + ident(fresh) + " WITH (FORCE)"); err != nil {
		return nil, err
	}
	if err := exec("CREATE DATABASE " + ident(fresh) + " WITH TEMPLATE template0 " + props); err != nil {
		return nil, err
	}
	dropFresh := func(cause error) error {
		if err := exec("DROP DATABASE IF EXISTS " + ident(fresh) + " WITH (FORCE)"); err != nil {
			return errors.Join(cause, err)
		}
		return cause
	}
	if err := t.runTool(ctx, c.to(fresh), "pg_restore", "--single-transaction", "--exit-on-error", "--no-password", "--dbname="+fresh, file); err != nil {
		return nil, dropFresh(fmt.Errorf("restore into a fresh database: %w", err))
	}
	if err := prove(ctx, c.to(fresh), d); err != nil {
		return nil, dropFresh(err)
	}
	if err := swap(ctx, admin, exec, live, fresh, old); err != nil {
		return nil, dropFresh(fmt.Errorf("swap the restored database in: %s", c.redact(err.Error())))
	}
	if err := exec("DROP DATABASE IF EXISTS " + ident(old) + " WITH (FORCE)"); err != nil {
		return nil, err
	}
	return &Restored{Database: live, Tables: len(d.Tables), Rows: d.Rows(), Duration: time.Since(start)}, nil
}

// admin connects to the server's maintenance database, to create, rename
// and drop databases (a database cannot be renamed from inside it).
func (c conn) admin(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, c.to("postgres").cfg)
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "3D000" { // no database "postgres"
		return c.to("template1").connect(ctx)
	}
	if err != nil {
		return c.to("postgres").connect(ctx) // for the error's wording
	}
	return conn, nil
}

// properties are the live database's owner, encoding and locale, for the
// fresh one; those of the database an interrupted swap renamed if the live
// one is gone.
func properties(ctx context.Context, admin *pgx.Conn, live, old string) (string, error) {
	var owner, enc, collate, ctype string
	err := admin.QueryRow(ctx, `SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype
		FROM pg_database WHERE datname = ANY($1) ORDER BY datname = $2 DESC LIMIT 1`, []string{live, old}, live).Scan(&owner, &enc, &collate, &ctype)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil // neither: the server's defaults, the connecting role as owner
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("OWNER %s ENCODING %s LC_COLLATE %s LC_CTYPE %s", ident(owner), quote(enc), quote(collate), quote(ctype)), nil
}

// prove compares the restored database's tables and rows with the dump's.
func prove(ctx context.Context, c conn, d *Dump) error {
	db, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer db.Close(context.WithoutCancel(ctx))
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin: %s", c.redact(err.Error()))
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	got, err := count(ctx, tx)
	if err != nil {
		return fmt.Errorf("count the restored rows: %s", c.redact(err.Error()))
	}
	if diff := Compare(d.Tables, got); diff != "" {
		return fmt.Errorf("%w: %s", ErrMismatch, diff)
	}
	return nil
}

// Compare describes how got differs from want, "" if not at all.
func Compare(want, got []Table) string {
	rows := map[string]int64{}
	for _, t := range got {
		rows[t.String()] = t.Rows
	}
	var diffs []string
	for _, t := range want {
		n, ok := rows[t.String()]
		switch {
		case !ok:
			diffs = append(diffs, t.String()+" is missing")
		case n != t.Rows:
			diffs = append(diffs, fmt.Sprintf("%s has %d rows, the backup %d", t.String(), n, t.Rows))
		}
		delete(rows, t.String())
	}
	for name := range rows {
		diffs = append(diffs, name+" is not in the backup")
	}
	if len(diffs) > 5 {
		diffs = append(diffs[:5], fmt.Sprintf("and %d more", len(diffs)-5))
	}
	return strings.Join(diffs, "; ")
}

// swap renames live to old and fresh to live in one transaction, after
// closing live to new sessions and ending those it has. If it fails, live
// is opened again and left as it was.
func swap(ctx context.Context, admin *pgx.Conn, exec func(string, ...any) error, live, fresh, old string) error {
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", live).Scan(&exists); err != nil {
		return err
	}
	if err := exec("DROP DATABASE IF EXISTS " + ident(old) + " WITH (FORCE)"); err != nil {
		return err
	}
	if !exists { // an interrupted swap renamed it already
		return exec("ALTER DATABASE " + ident(fresh) + " RENAME TO " + ident(live))
	}
	if err := exec("ALTER DATABASE " + ident(live) + " WITH ALLOW_CONNECTIONS false"); err != nil {
		return err
	}
	var err error
	for range 5 {
		if err = exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", live); err != nil {
			break
		}
		err = pgx.BeginFunc(ctx, admin, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "ALTER DATABASE "+ident(live)+" RENAME TO "+ident(old)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "ALTER DATABASE "+ident(fresh)+" RENAME TO "+ident(live))
			return err
		})
		if err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond) // a session still ending
	}
	return errors.Join(err, exec("ALTER DATABASE "+ident(live)+" WITH ALLOW_CONNECTIONS true"))
}

// derived is live's name with suffix, cut to PostgreSQL's 63 bytes.
func derived(live, suffix string) string {
	max := 63 - len(suffix)
	for len(live) > max || !utf8.ValidString(live) {
		live = live[:min(len(live)-1, max)]
	}
	return live + suffix
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
