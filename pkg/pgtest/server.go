package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Server is a PostgreSQL server of a test's own: a cluster made by initdb
// in a temporary directory, listening on a free loopback port, that the
// test may crash and start again. A real restart is what the shared server
// must never undergo, since every other test uses it. It needs the server's
// programs (initdb, pg_ctl, postgres: on PATH or under
// /usr/lib/postgresql/*/bin), as a test needing the shared server needs it
// running: a test fails without them, it does not skip.
type Server struct {
	t    testing.TB
	dir  string // the cluster's data directory, also its socket directory
	port int
	bin  string // the directory of initdb and pg_ctl
	// asPostgres runs the programs as the postgres user: we are root,
	// whom initdb refuses.
	asPostgres bool
}

// StartServer makes and starts a server for t, stopped and removed when t
// ends.
func StartServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: binDir(t)}
	base, err := os.MkdirTemp("", "upshift-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	s.dir = filepath.Join(base, "data")
	if os.Geteuid() == 0 {
		// initdb refuses to run as root: the cluster belongs to the
		// postgres user, as the packaged one does.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("pgtest: running as root, a cluster needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(base, uid, gid); err != nil {
			t.Fatal(err)
		}
		s.asPostgres = true
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.run("initdb", "-D", s.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	s.Start()
	t.Cleanup(func() {
		// Whatever state the test left it in; a server already stopped
		// makes pg_ctl say so, which is fine.
		s.command("pg_ctl", "-D", s.dir, "-m", "immediate", "-w", "stop").Run()
	})
	return s
}

// URL is the server's postgres database, for the postgres user.
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Stop crashes the server: an immediate stop, every connection cut, no
// checkpoint; it recovers from its write-ahead log when started again.
func (s *Server) Stop() {
	s.t.Helper()
	s.run("pg_ctl", "-D", s.dir, "-m", "immediate", "-w", "stop")
}

// Start starts the server on its port and waits until it accepts
// connections (after its recovery, if it crashed).
func (s *Server) Start() {
	s.t.Helper()
	// fsync off: a crash of the server (not of the machine) loses nothing
	// written; synchronous_commit stays on, so a commit acknowledged is in
	// the log before the crash.
	s.run("pg_ctl", "-D", s.dir, "-w", "-t", "60", "-l", filepath.Join(s.dir, "server.log"), "start",
		"-o", fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off", s.port, s.dir))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		conn, err := connect(ctx, s.URL())
		if err == nil {
			conn.Close(ctx)
			return
		}
		if ctx.Err() != nil {
			s.t.Fatalf("pgtest: the test's server does not accept connections: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Server) run(program string, args ...string) {
	s.t.Helper()
	cmd := s.command(program, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("pgtest: %s: %v\n%s", program, err, out.Bytes())
	}
}

// command runs one of the server's programs, as the postgres user if we
// are root.
func (s *Server) command(program string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bin, program)
	if !s.asPostgres {
		return exec.Command(path, args...)
	}
	return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
}

// binDir finds the directory holding initdb and pg_ctl.
func binDir(t testing.TB) string {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real)
		}
		return filepath.Dir(p)
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		t.Fatal("pgtest: no initdb on PATH nor under /usr/lib/postgresql/*/bin: install the PostgreSQL server (apt-get install postgresql)")
	}
	return filepath.Dir(found[len(found)-1])
}
