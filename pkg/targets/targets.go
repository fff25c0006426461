// Package targets is the registry of the targets a phase service instance
// serves, read from that instance's own configuration file: where each
// target lives, how to stop and start it, how to check its health, where its
// backups go. A request only names targets; everything that runs code or
// holds a secret is here, on the host, out of reach of whoever publishes a
// request.
package targets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/upshift/upshift/pkg/labels"
)

// ErrUnknown is returned for a target the registry does not hold.
var ErrUnknown = errors.New("unknown target")

// File is the configuration file's layout.
type File struct {
	// Defaults every target starts from.
	Defaults Defaults          `json:"defaults,omitzero"`
	Targets  map[string]Target `json:"targets"`
}

// Target is one deployable unit on one host.
type Target struct {
	Name string `json:"-"`
	// Root holds releases/<version>, the current link, shared/ and, unless
	// set elsewhere, backups/.
	Root string `json:"root"`
	// Labels are announced in the registry of targets, where a request's
	// selector (role=web,zone=dmz) chooses targets by them.
	Labels map[string]string `json:"labels,omitempty"`
	Hooks  Hooks             `json:"hooks,omitzero"`
	// Env is added to every hook's environment. It may hold secrets and is
	// never logged.
	Env    map[string]Secret `json:"env,omitempty"`
	Health Health            `json:"health,omitzero"`
	// Verify holds verify's checks besides Health's.
	Verify   Verify   `json:"verify,omitzero"`
	Precheck Precheck `json:"precheck,omitzero"`
	Backup   Backup   `json:"backup,omitzero"`
	// Databases the target's software uses: backed up with it, migrated by
	// deploy, restored by the roll-back, checked by precheck.
	Databases []Database `json:"databases,omitempty"`
	// Migrations says where a release's SQL migrations go; nil: to the
	// only database, if the target declares exactly one.
	Migrations *Migrations `json:"migrations,omitempty"`
	// Maintenance says what the actions of a Maintenance request do here.
	Maintenance Maintenance `json:"maintenance,omitzero"`
	// Keep is how many releases to keep after a successful deploy. Default 3.
	Keep int `json:"keep,omitempty"`
}

// Hooks are the commands that act on the target's processes.
type Hooks struct {
	Stop    *Hook `json:"stop,omitempty"`
	Migrate *Hook `json:"migrate,omitempty"`
	Start   *Hook `json:"start,omitempty"`
}

// Hook is a command run without a shell, in the target's root.
type Hook struct {
	Command []string `json:"command"`
	Timeout Duration `json:"timeout,omitzero"`
}

// Health says how verify checks the target.
type Health struct {
	// URL must answer 2xx.
	URL string `json:"url,omitempty"`
	// VersionURL must answer the version being installed (plain text, or
	// JSON with a "version" field).
	VersionURL string `json:"versionURL,omitempty"`
	// Interval between probes. Default 1s.
	Interval Duration `json:"interval,omitzero"`
	// Successes in a row that pass the check. Default 3.
	Successes int `json:"successes,omitempty"`
	// Failures in a row that fail it. Default 5.
	Failures int `json:"failures,omitempty"`
}

// Backup says where backups go and what they hold beyond the release.
type Backup struct {
	// Dir holds the backups; relative to the root. Default <root>/backups.
	// No two targets may share one.
	Dir string `json:"dir,omitempty"`
	// Paths, relative to the root, to back up besides the current release
	// (configuration kept under shared/, say).
	Paths []string `json:"paths,omitempty"`
}

// Registry holds the targets of one service instance.
type Registry struct {
	targets map[string]Target

	secretsOnce sync.Once
	secrets     []string
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Load reads a registry from a YAML or JSON file.
func Load(path string) (*Registry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("targets: %w", err)
	}
	r, err := Parse(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("targets %s: %w", path, err)
	}
	return r, nil
}

// Parse reads a registry; relative roots are taken from base. Each target's
// precheck and verify settings are merged over the file's defaults
// (Precheck.Merge, Verify.Merge).
func Parse(b []byte, base string) (*Registry, error) {
	var f File
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, err
	}
	for name, t := range f.Targets {
		t.Precheck = f.Defaults.Precheck.Merge(t.Precheck)
		t.Verify = f.Defaults.Verify.Merge(t.Verify)
		f.Targets[name] = t
	}
	return New(f.Targets, base)
}

// New checks targets and fills in defaults.
func New(ts map[string]Target, base string) (*Registry, error) {
	r := &Registry{targets: map[string]Target{}}
	var problems []string
	for name, t := range ts {
		if !nameRE.MatchString(name) {
			problems = append(problems, fmt.Sprintf("%q: names are lower-case letters, digits and '-'", name))
			continue
		}
		t.Name = name
		if t.Root == "" {
			problems = append(problems, name+": root is required")
			continue
		}
		if !filepath.IsAbs(t.Root) {
			t.Root = filepath.Join(base, t.Root)
		}
		for _, p := range labels.CheckLabels(t.Labels) {
			problems = append(problems, name+": "+p)
		}
		for _, h := range []*Hook{t.Hooks.Stop, t.Hooks.Migrate, t.Hooks.Start} {
			if h != nil && len(h.Command) == 0 {
				problems = append(problems, name+": a hook needs a command")
			}
			if h != nil && h.Timeout.Duration == 0 {
				h.Timeout.Duration = time.Minute
			}
		}
		if t.Health.Interval.Duration == 0 {
			t.Health.Interval.Duration = time.Second
		}
		if t.Health.Successes == 0 {
			t.Health.Successes = 3
		}
		if t.Health.Failures == 0 {
			t.Health.Failures = 5
		}
		t.Precheck = t.Precheck.clone()
		for _, p := range t.Precheck.check(t.Databases) {
			problems = append(problems, name+": "+p)
		}
		t.Verify = t.Verify.clone()
		for _, p := range t.Verify.check() {
			problems = append(problems, name+": "+p)
		}
		if t.Backup.Dir == "" {
			t.Backup.Dir = "backups"
		}
		if !filepath.IsAbs(t.Backup.Dir) {
			t.Backup.Dir = filepath.Join(t.Root, t.Backup.Dir)
		}
		for _, p := range t.Backup.Paths {
			if !filepath.IsLocal(p) {
				problems = append(problems, fmt.Sprintf("%s: backup path %q must be relative and stay inside the root", name, p))
			}
		}
		if t.Keep == 0 {
			t.Keep = 3
		}
		problems = append(problems, t.checkDatabases(base)...)
		problems = append(problems, t.checkMaintenance()...)
		r.targets[name] = t
	}
	byDir := map[string]string{}
	for name, t := range r.targets {
		if other, ok := byDir[t.Backup.Dir]; ok {
			problems = append(problems, fmt.Sprintf("%s and %s share the backup directory %s", min(name, other), max(name, other), t.Backup.Dir))
		}
		byDir[t.Backup.Dir] = name
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return r, nil
}

// Get returns a target by name.
func (r *Registry) Get(name string) (Target, error) {
	t, ok := r.targets[name]
	if !ok {
		return Target{}, fmt.Errorf("%w %q", ErrUnknown, name)
	}
	return t, nil
}

// Names lists the targets, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.targets))
	for n := range r.targets {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Describe is what the registry of targets says of a target: its labels
// and the version installed, if the current link says ("" otherwise).
func (r *Registry) Describe(name string) (labels map[string]string, version string) {
	t, ok := r.targets[name]
	if !ok {
		return nil, ""
	}
	v, _ := t.CurrentVersion()
	return t.Labels, v
}

// Releases is the directory holding one directory per installed version.
func (t Target) Releases() string { return filepath.Join(t.Root, "releases") }

// Release is the directory of one version.
func (t Target) Release(version string) string { return filepath.Join(t.Releases(), version) }

// Current is the link to the release in service.
func (t Target) Current() string { return filepath.Join(t.Root, "current") }

// CurrentVersion reads the version the current link points at; "" if none.
func (t Target) CurrentVersion() (string, error) {
	dest, err := os.Readlink(t.Current())
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read current link: %w", err)
	}
	return filepath.Base(dest), nil
}

// HookEnv is the environment of a hook: the target's, plus UPSHIFT_* values.
func (t Target) HookEnv(extra map[string]string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"UPSHIFT_TARGET=" + t.Name, "UPSHIFT_ROOT=" + t.Root}
	for k, v := range t.Env {
		env = append(env, k+"="+string(v))
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// Secret is a string kept out of logs and printed configuration.
type Secret string

// String masks the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "*****"
}

// Duration is a time.Duration written as "30s".
type Duration struct{ time.Duration }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	v, err := time.ParseDuration(strings.Trim(string(b), `"`))
	if err != nil {
		return fmt.Errorf("duration %s: %w", b, err)
	}
	d.Duration = v
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(d.String())), nil }

// IsZero lets omitzero leave it out.
func (d Duration) IsZero() bool { return d.Duration == 0 }

// Bytes is a size written as 500MiB, 2GiB, 1000000 or 10MB.
type Bytes int64

var units = map[string]int64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}

// UnmarshalJSON implements json.Unmarshaler.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	s := strings.TrimSpace(strings.Trim(string(data), `"`))
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	f, err := strconv.ParseFloat(num, 64)
	mul, ok := units[unit]
	if err != nil || !ok || f < 0 {
		return fmt.Errorf("size %s: write it as 500MiB, 2GiB or a number of bytes", data)
	}
	*b = Bytes(f * float64(mul))
	return nil
}

func (b Bytes) String() string {
	switch {
	case b >= 1<<40:
		return fmt.Sprintf("%.1fTiB", float64(b)/(1<<40))
	case b >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
	default:
		return fmt.Sprintf("%dB", int64(b))
	}
}

// Set implements flag.Value, so a size can be a flag.
func (b *Bytes) Set(s string) error { return b.UnmarshalJSON([]byte(s)) }
