// Package pgtest gives a test its own PostgreSQL database: created empty on
// the server named by UPSHIFT_TEST_DATABASE_URL (by default a local server
// with trust authentication), under a unique name, and dropped when the test
// ends, so tests never see each other's rows and can run in parallel.
//
// It does not start PostgreSQL: a test that needs it fails, saying how to
// start one, rather than skipping, so a green run always means the store was
// tested. It creates no schema either: that is the store's own migrations'
// job.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// EnvURL names the variable holding the URL of the server to test against.
const EnvURL = "UPSHIFT_TEST_DATABASE_URL"

// DefaultURL is the server used when EnvURL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// ServerURL returns the URL of the server tests run against.
func ServerURL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return DefaultURL
}

// Database creates an empty database for t, drops it when t ends, and returns
// its URL.
func Database(t testing.TB) string {
	t.Helper()
	server := ServerURL()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := connect(ctx, server)
	if err != nil {
		t.Fatalf("pgtest: cannot reach PostgreSQL at %s: %v\n"+
			"Tests need a PostgreSQL server (15 or later) that accepts this URL without a password.\n"+
			"Start the local one:  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"+
			"or run one:           docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15\n"+
			"or point %s at another server.", redact(server), err, EnvURL)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	name := uniqueName(t.Name())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() { drop(t, server, name) })
	return withDatabase(server, name)
}

// connect opens a connection for creating and dropping databases. The
// database the URL names only serves as a place to connect to; a fresh
// server has no "test" database, so "postgres" stands in for a missing one.
func connect(ctx context.Context, server string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, server)
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "3D000" { // invalid_catalog_name
		return pgx.Connect(ctx, withDatabase(server, "postgres"))
	}
	return conn, err
}

func drop(t testing.TB, server, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := connect(ctx, server)
	if err != nil {
		t.Errorf("pgtest: drop database %s: %v", name, err)
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// FORCE ends the connections a test left open (a pool it did not close).
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("pgtest: drop database %s: %v", name, err)
	}
}

// uniqueName returns a database name that says which test made it, for
// whoever finds it left behind by a killed run, and cannot collide.
func uniqueName(test string) string {
	var slug strings.Builder
	for _, r := range strings.ToLower(test) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			slug.WriteRune(r)
		case slug.Len() > 0 && !strings.HasSuffix(slug.String(), "_"):
			slug.WriteByte('_')
		}
	}
	s := strings.Trim(slug.String(), "_")
	if len(s) > 32 {
		s = s[:32]
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b) // never fails
	return "upshift_" + s + "_" + hex.EncodeToString(b)
}

// withDatabase returns the server URL (or key=value string) naming another
// database.
func withDatabase(server, name string) string {
	if u, err := url.Parse(server); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + name
		u.RawPath = ""
		return u.String()
	}
	return server + " dbname=" + name // a later keyword wins
}

func redact(server string) string {
	if u, err := url.Parse(server); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	return server
}

// Exec runs sql (one or more statements) on the database at url, failing
// the test if it cannot.
func Exec(t testing.TB, url, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", redact(url), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// KillAdvisoryHolder ends, from another connection, the session holding
// the session-level advisory lock key in the database at url, as the death
// of its process would; the test fails unless exactly one held it.
func KillAdvisoryHolder(t testing.TB, url string, key int64) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	// A bigint advisory key is in classid (high half) and objid (low).
	err = conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid::bigint = $1 AND objid::bigint = $2`, key>>32, key&0xffffffff).Scan(&n)
	if err != nil || n != 1 {
		t.Fatalf("end the session holding advisory lock %d: %v, %d sessions", key, err, n)
	}
}
