package targets

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// DatabaseKinds are the kinds of database a target may declare.
var DatabaseKinds = []string{"postgres"}

// Database is one database a target's software uses. Its DSN is read only
// when something connects, from the environment of the service that does or
// from a file; it never leaves the host: report lines, events, logs and
// errors name the database by Name only.
type Database struct {
	// Name in reports and backups: lower-case letters, digits and '-'.
	Name string `json:"name"`
	// Kind of server; only "postgres" (the default) for now.
	Kind string `json:"kind,omitempty"`
	// DSNEnv names the environment variable holding the DSN.
	DSNEnv string `json:"dsnEnv,omitempty"`
	// DSNFile holds the DSN; relative to the targets file.
	DSNFile string `json:"dsnFile,omitempty"`
}

// Migrations says where the SQL migrations a release ships are applied.
type Migrations struct {
	// Database is the name of one of the target's databases.
	Database string `json:"database,omitempty"`
	// Dir is the directory in the release holding the migrations. Default
	// "migrations".
	Dir string `json:"dir,omitempty"`
}

// DefaultMigrationsDir is where a release keeps its SQL migrations.
const DefaultMigrationsDir = "migrations"

// DSN reads the database's DSN where the configuration says it is.
func (d Database) DSN() (Secret, error) {
	if d.DSNEnv != "" {
		v, ok := os.LookupEnv(d.DSNEnv)
		if !ok || v == "" {
			return "", fmt.Errorf("the environment variable %s holding its DSN is not set", d.DSNEnv)
		}
		return Secret(v), nil
	}
	b, err := os.ReadFile(d.DSNFile)
	if err != nil {
		// The error names the file, not what is in it.
		return "", fmt.Errorf("read its DSN: %w", err)
	}
	return Secret(strings.TrimSpace(string(b))), nil
}

// Database returns the target's database named name.
func (t Target) Database(name string) (Database, bool) {
	i := slices.IndexFunc(t.Databases, func(d Database) bool { return d.Name == name })
	if i < 0 {
		return Database{}, false
	}
	return t.Databases[i], true
}

// MigrationsTarget is the database a release's migrations are applied to
// and the directory in the release that holds them; ok is false when the
// target has no database to migrate (no database, or several and no
// migrations setting).
func (t Target) MigrationsTarget() (db Database, dir string, ok bool) {
	m := Migrations{}
	if t.Migrations != nil {
		m = *t.Migrations
	}
	if m.Dir == "" {
		m.Dir = DefaultMigrationsDir
	}
	switch {
	case m.Database != "":
		db, ok = t.Database(m.Database)
	case len(t.Databases) == 1:
		db, ok = t.Databases[0], true
	}
	return db, m.Dir, ok
}

// checkDatabases validates the databases and the migrations setting and
// fills in defaults: the kind, relative DSN files.
func (t *Target) checkDatabases(base string) []string {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, t.Name+": "+fmt.Sprintf(format, a...)) }
	t.Databases = slices.Clone(t.Databases)
	seen := map[string]bool{}
	for i := range t.Databases {
		d := &t.Databases[i]
		if !nameRE.MatchString(d.Name) {
			bad("database %q: names are lower-case letters, digits and '-'", d.Name)
		}
		if seen[d.Name] {
			bad("two databases named %q", d.Name)
		}
		seen[d.Name] = true
		if d.Kind == "" {
			d.Kind = "postgres"
		}
		if !slices.Contains(DatabaseKinds, d.Kind) {
			bad("database %q: kind %q is not one of %s", d.Name, d.Kind, strings.Join(DatabaseKinds, ", "))
		}
		if (d.DSNEnv == "") == (d.DSNFile == "") {
			bad("database %q needs one of dsnEnv and dsnFile", d.Name)
		}
		if d.DSNFile != "" && !filepath.IsAbs(d.DSNFile) {
			d.DSNFile = filepath.Join(base, d.DSNFile)
		}
	}
	if m := t.Migrations; m != nil {
		c := *m
		t.Migrations = &c
		if c.Database != "" && !seen[c.Database] {
			bad("migrations: database %q is not one of the target's databases", c.Database)
		}
		if c.Database == "" && len(t.Databases) != 1 {
			bad("migrations: name the database (the target has %d)", len(t.Databases))
		}
		if c.Dir != "" && (!filepath.IsLocal(c.Dir) || path.Clean(filepath.ToSlash(c.Dir)) != filepath.ToSlash(c.Dir)) {
			bad("migrations: dir %q must be a clean path inside the release", c.Dir)
		}
	}
	return problems
}
