// Package pgdump takes, verifies and restores full backups of PostgreSQL
// databases with the server's own tools, pg_dump and pg_restore, in their
// custom format, and proves a restore by counting every table's rows.
//
// A dump is taken inside one REPEATABLE READ transaction whose snapshot is
// exported to pg_dump (--snapshot): the row counts recorded beside the dump
// are those of the very data it holds, whatever the application writes
// meanwhile. The dump streams from pg_dump to the file through a SHA-256
// digest, so memory stays flat however large the database.
//
// A restore never touches the live database until a verified copy exists:
// the dump is checked (digest, then pg_restore reads all of it), restored
// into a fresh database in one transaction, and its row counts compared with
// those recorded at backup; only then is the fresh database swapped in for
// the live one (two renames in one transaction). The swap, unlike
// pg_restore --clean, leaves nothing of what was created after the dump:
// --clean drops only the objects the dump holds, so a table a failed
// migration added would survive it.
//
// DSNs stay out of every error and argument list: the tools get the
// connection in PG* environment variables, and errors lose the password.
package pgdump

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Errors, for errors.Is.
var (
	// ErrNoClient: pg_dump or pg_restore cannot be found.
	ErrNoClient = errors.New("PostgreSQL client tools not found")
	// ErrClientTooOld: the tools are of an older major version than the
	// server, and pg_dump refuses to dump a newer server.
	ErrClientTooOld = errors.New("PostgreSQL client tools older than the server")
	// ErrCorrupt: a dump does not match its digest, or pg_restore cannot
	// read it.
	ErrCorrupt = errors.New("dump corrupt")
	// ErrMismatch: a restored database's row counts differ from those
	// recorded at backup.
	ErrMismatch = errors.New("restored rows differ from the backup")
	// ErrDSN: the DSN cannot be read or does not parse.
	ErrDSN = errors.New("bad DSN")
)

// Tools runs pg_dump and pg_restore.
type Tools struct {
	// Dir holds pg_dump and pg_restore; empty: found on PATH.
	Dir string
	// Path is where the tools are looked for when Dir is empty (default:
	// the service's PATH) and, with Home, what they run with.
	Path, Home string
}

func (t Tools) bin(name string) (string, error) {
	if t.Dir != "" {
		p := filepath.Join(t.Dir, name)
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("%w: %s in %s: %w", ErrNoClient, name, t.Dir, err)
		}
		return p, nil
	}
	if t.Path != "" {
		for _, d := range filepath.SplitList(t.Path) {
			if p := filepath.Join(d, name); d != "" {
				if _, err := exec.LookPath(p); err == nil {
					return p, nil
				}
			}
		}
		return "", fmt.Errorf("%w: no %s on PATH (set the directory of the PostgreSQL client tools with --pg-bin-dir)", ErrNoClient, name)
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: no %s on PATH (set the directory of the PostgreSQL client tools with --pg-bin-dir)", ErrNoClient, name)
	}
	return p, nil
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// Version is the major version of a tool, and its whole version line.
func (t Tools) Version(ctx context.Context, name string) (major int, line string, err error) {
	bin, err := t.bin(name)
	if err != nil {
		return 0, "", err
	}
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return 0, "", fmt.Errorf("%w: %s --version: %w", ErrNoClient, bin, err)
	}
	line = strings.TrimSpace(string(out))
	m := versionRE.FindStringSubmatch(line)
	if m == nil {
		return 0, line, fmt.Errorf("%w: %s --version says %q", ErrNoClient, bin, line)
	}
	major, _ = strconv.Atoi(m[1])
	return major, line, nil
}

// checkClient refuses tools older than the server's major version.
func (t Tools) checkClient(ctx context.Context, name string, serverNum int) (string, error) {
	major, line, err := t.Version(ctx, name)
	if err != nil {
		return "", err
	}
	if server := serverNum / 10000; major < server {
		return line, fmt.Errorf("%w: %s is %d, the server is %d: install the client tools of version %d or later", ErrClientTooOld, name, major, server, server)
	}
	return line, nil
}

// base is the tools' environment before the connection: PATH and HOME if
// set, nothing of the service's own.
func (t Tools) base() []string {
	var env []string
	if t.Path != "" {
		env = append(env, "PATH="+t.Path)
	}
	if t.Home != "" {
		env = append(env, "HOME="+t.Home)
	}
	return env
}

// runTool runs a tool with the connection in its environment; its error
// holds the end of its stderr, without the password.
func (t Tools) runTool(ctx context.Context, c conn, name string, args ...string) error {
	bin, err := t.bin(name)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = c.env(t)
	var stderr tail
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, c.redact(stderr.String()))
	}
	return nil
}

// tail keeps the last 2 KiB written to it.
type tail struct{ b []byte }

func (w *tail) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	if len(w.b) > 2<<10 {
		w.b = w.b[len(w.b)-2<<10:]
	}
	return len(p), nil
}

func (w *tail) String() string { return strings.TrimSpace(string(w.b)) }
