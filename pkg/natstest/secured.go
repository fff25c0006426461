package natstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/upshift/upshift/pkg/natsembed"
)

// Secured is a server run with the users and permissions of a
// nats-server configuration file, as production runs it.
type Secured struct {
	*natsembed.Server
	Users
	*Violations
}

// Users are the users of a configuration file and their passwords.
type Users map[string]string

// userRE finds each user of a configuration file and the variable its
// password is read from.
var userRE = regexp.MustCompile(`user:\s*"?([\w@.-]+)"?\s*,\s*password:\s*\$(\w+)`)

// Passwords sets, for the test, each password variable of the
// configuration file at path to a fresh random password, and returns the
// users with their passwords. The test cannot run in parallel with others:
// the server reads the variables from the environment.
func Passwords(t *testing.T, path string) Users {
	t.Helper()
	conf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	users := Users{}
	for _, m := range userRE.FindAllStringSubmatch(string(conf), -1) {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		users[m[1]] = hex.EncodeToString(b)
		t.Setenv(m[2], users[m[1]])
	}
	if len(users) == 0 {
		t.Fatalf("%s: no user with a password variable", path)
	}
	return users
}

// Options are the connection options of user.
func (u Users) Options(t testing.TB, user string) []nats.Option {
	t.Helper()
	pw, ok := u[user]
	if !ok {
		t.Fatalf("no user %q in the configuration", user)
	}
	return []nats.Option{nats.UserInfo(user, pw), nats.Name(user)}
}

// StartSecured starts a server with the configuration file at path (see
// Passwords). configure, if not nil, changes the options last (TLS).
func StartSecured(t *testing.T, path string, configure func(*server.Options)) *Secured {
	t.Helper()
	s := &Secured{Users: Passwords(t, path), Violations: &Violations{}}
	var err error
	s.Server, err = natsembed.Start(natsembed.Options{Dir: t.TempDir(), ConfigFile: path, Configure: configure, Logger: s.Violations})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Violations is a server logger that keeps the permissions violations the
// server logs, and drops the rest.
type Violations struct {
	mu    sync.Mutex
	lines []string
}

// Lines are the violations logged so far.
func (v *Violations) Lines() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.lines...)
}

func (v *Violations) keep(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if strings.Contains(line, "Publish Violation") || strings.Contains(line, "Subscription Violation") {
		v.mu.Lock()
		v.lines = append(v.lines, line)
		v.mu.Unlock()
	}
}

func (v *Violations) Noticef(format string, args ...any) { v.keep(format, args...) }
func (v *Violations) Warnf(format string, args ...any)   { v.keep(format, args...) }
func (v *Violations) Fatalf(format string, args ...any)  { v.keep(format, args...) }
func (v *Violations) Errorf(format string, args ...any)  { v.keep(format, args...) }
func (v *Violations) Debugf(format string, args ...any)  { v.keep(format, args...) }
func (v *Violations) Tracef(format string, args ...any)  { v.keep(format, args...) }
