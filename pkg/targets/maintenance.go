package targets

import (
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"time"
)

// Maintenance says what the maintenance actions of a Maintenance request do
// on this target. A request only names actions (and purge rules): the
// statements, directories and files are here, on the host.
type Maintenance struct {
	// Database the database actions (reindex, analyze, vacuum) run
	// against; "": every database the target declares.
	Database string `json:"database,omitempty"`
	// Purge rules: clean-up statements, each run in a transaction of its
	// own, the rows they remove reported.
	Purge []PurgeRule `json:"purge,omitempty"`
	// Logs is what archive-logs archives, and how it checks that logging
	// still writes.
	Logs *LogMaintenance `json:"logs,omitempty"`
	// Config is what config-drift compares with its baseline.
	Config *ConfigFiles `json:"config,omitempty"`
}

// PurgeRule is one clean-up statement, e.g. deleting sessions older than a
// month.
type PurgeRule struct {
	// Name by which a request picks it: lower-case letters, digits and '-'.
	Name string `json:"name"`
	// Database is one of the target's; may be left out if it has one.
	Database string `json:"database,omitempty"`
	// SQL is one statement (DELETE, UPDATE, a function call); the rows it
	// reports affected are the rows removed.
	SQL string `json:"sql"`
}

// LogMaintenance is the target's log files.
type LogMaintenance struct {
	// Dirs, relative to the root, hold the log files (not their
	// subdirectories).
	Dirs []string `json:"dirs"`
	// Archive, relative to the root, receives the compressed files, under
	// the name of the directory they came from.
	Archive string `json:"archive"`
	// OlderThanDays: files last modified longer ago are archived. Default 7.
	OlderThanDays int `json:"olderThanDays,omitempty"`
	// Check says how to see that logging still writes after archiving.
	Check LogCheck `json:"check"`
}

// LogCheck: after archiving, File must be written to (grow, or its
// modification time move) within Within. Command, or a GET of URL, is what
// makes the application write to it (a request that it logs, a signal to
// reopen its logs); with neither, the application is expected to log on
// its own within that time.
type LogCheck struct {
	// File, relative to the root: the live log, never archived.
	File    string   `json:"file"`
	Within  Duration `json:"within,omitzero"`
	Command *Hook    `json:"command,omitempty"`
	URL     string   `json:"url,omitempty"`
}

// ConfigFiles are the configuration files config-drift watches.
type ConfigFiles struct {
	// Paths, relative to the root: files, or directories whose files are
	// all watched.
	Paths []string `json:"paths"`
	// Baseline is the file, relative to the root, holding the recorded
	// digests. Default .upshift-baseline.json.
	Baseline string `json:"baseline,omitempty"`
}

// Defaults of the maintenance settings.
const (
	DefaultLogAge       = 7
	DefaultLogWithin    = 10 * time.Second
	DefaultBaselineFile = ".upshift-baseline.json"
)

// PurgeRules returns the rules named, or every rule when names is empty;
// an unknown name is an error.
func (m Maintenance) PurgeRules(names []string) ([]PurgeRule, error) {
	if len(names) == 0 {
		return m.Purge, nil
	}
	var out []PurgeRule
	for _, n := range names {
		i := slices.IndexFunc(m.Purge, func(r PurgeRule) bool { return r.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("no purge rule %q", n)
		}
		out = append(out, m.Purge[i])
	}
	return out, nil
}

// LogPaths are the paths, relative to the root, that archive-logs changes:
// the log directories and the archive. A backup taken before it holds
// them, but the live log (Skip), which the application keeps open.
func (t Target) LogPaths() (paths []string, skip string) {
	l := t.Maintenance.Logs
	if l == nil {
		return nil, ""
	}
	return append(slices.Clone(l.Dirs), l.Archive), l.Check.File
}

// cleanLocal reports whether p is a clean relative path inside the root.
func cleanLocal(p string) bool {
	return p != "" && p != "." && filepath.IsLocal(p) && path.Clean(filepath.ToSlash(p)) == filepath.ToSlash(p)
}

// checkMaintenance validates the maintenance settings and fills in defaults.
func (t *Target) checkMaintenance() []string {
	var problems []string
	bad := func(format string, a ...any) {
		problems = append(problems, t.Name+": maintenance: "+fmt.Sprintf(format, a...))
	}
	m := &t.Maintenance
	if m.Database != "" {
		if _, ok := t.Database(m.Database); !ok {
			bad("database %q is not one of the target's databases", m.Database)
		}
	}
	m.Purge = slices.Clone(m.Purge)
	seen := map[string]bool{}
	for i := range m.Purge {
		r := &m.Purge[i]
		if !nameRE.MatchString(r.Name) {
			bad("purge rule %q: names are lower-case letters, digits and '-'", r.Name)
		}
		if seen[r.Name] {
			bad("two purge rules named %q", r.Name)
		}
		seen[r.Name] = true
		if r.SQL == "" {
			bad("purge rule %q has no sql", r.Name)
		}
		switch {
		case r.Database == "" && len(t.Databases) == 1:
			r.Database = t.Databases[0].Name
		case r.Database == "":
			bad("purge rule %q: name its database (the target has %d)", r.Name, len(t.Databases))
		default:
			if _, ok := t.Database(r.Database); !ok {
				bad("purge rule %q: database %q is not one of the target's databases", r.Name, r.Database)
			}
		}
	}
	if l := m.Logs; l != nil {
		c := *l
		c.Dirs = slices.Clone(l.Dirs)
		if c.Check.Command != nil {
			h := *c.Check.Command
			c.Check.Command = &h
		}
		m.Logs = &c
		if len(c.Dirs) == 0 {
			bad("logs: dirs is required")
		}
		for _, d := range c.Dirs {
			if !cleanLocal(d) {
				bad("logs: dir %q must be a clean path inside the root", d)
			}
			if within(c.Archive, d) || within(d, c.Archive) {
				bad("logs: the archive %q and the log dir %q overlap", c.Archive, d)
			}
		}
		if !cleanLocal(c.Archive) {
			bad("logs: archive %q must be a clean path inside the root", c.Archive)
		}
		if c.OlderThanDays == 0 {
			c.OlderThanDays = DefaultLogAge
		}
		if c.OlderThanDays < 0 {
			bad("logs: olderThanDays must be positive")
		}
		if !cleanLocal(c.Check.File) || !slices.Contains(c.Dirs, filepath.Dir(c.Check.File)) {
			bad("logs: check.file %q must be a file in one of the log dirs", c.Check.File)
		}
		if c.Check.Within.Duration == 0 {
			c.Check.Within.Duration = DefaultLogWithin
		}
		if h := c.Check.Command; h != nil {
			if len(h.Command) == 0 {
				bad("logs: check.command needs a command")
			}
			if h.Timeout.Duration == 0 {
				h.Timeout.Duration = time.Minute
			}
		}
		if c.Check.URL != "" {
			if u, err := url.Parse(c.Check.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("logs: check.url must be an http or https URL")
			}
		}
	}
	if cf := m.Config; cf != nil {
		c := *cf
		c.Paths = slices.Clone(cf.Paths)
		m.Config = &c
		if len(c.Paths) == 0 {
			bad("config: paths is required")
		}
		for _, p := range c.Paths {
			if !cleanLocal(p) {
				bad("config: path %q must be a clean path inside the root", p)
			}
		}
		if c.Baseline == "" {
			c.Baseline = DefaultBaselineFile
		}
		if !cleanLocal(c.Baseline) {
			bad("config: baseline %q must be a clean path inside the root", c.Baseline)
		}
	}
	return problems
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	p, dir = filepath.ToSlash(p), filepath.ToSlash(dir)
	return p == dir || len(p) > len(dir) && p[:len(dir)] == dir && p[len(dir)] == '/'
}
