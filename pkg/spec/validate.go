package spec

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/upshift/upshift/pkg/labels"
)

// Limits on a request. A coordinator's store may take fewer targets (the
// KV store keeps a saga in one message: 200).
const (
	MaxTargets    = 10000
	MaxPhaseLimit = 24 * time.Hour
)

var (
	// Names become NATS subject tokens and directory names: keep them plain.
	nameRE     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	softwareRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	versionRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
	digestLen  = map[string]int{"sha256": 64, "sha512": 128, "md5": 32}
	hexRE      = regexp.MustCompile(`^[0-9a-f]+$`)
	// NATS bucket names.
	bucketRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	// Saga ids, as the coordinator makes and accepts them: a subject token
	// and a directory name.
	sagaRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
)

// Validate checks a request that has its defaults applied and returns a
// *ValidationError listing every problem, or nil.
func (r Request) Validate() error {
	var v validator
	if r.APIVersion != APIVersion {
		v.add("apiVersion", "must be %q, got %q", APIVersion, r.APIVersion)
	}
	v.name("metadata.team", r.Metadata.Team)
	v.name("metadata.environment", r.Metadata.Environment)
	if len(r.Metadata.Name) > 200 {
		v.add("metadata.name", "longer than 200 characters")
	}
	s := r.Spec
	if s.Software == "" {
		v.add("spec.software", "required")
	} else if !softwareRE.MatchString(s.Software) {
		v.add("spec.software", "%q: letters, digits, '.', '_' and '-' only", s.Software)
	}
	switch r.Kind {
	case KindUpgrade:
		v.version("spec.from", s.From, true)
		v.version("spec.to", s.To, true)
		if s.From != "" && s.From == s.To {
			v.add("spec.to", "equals spec.from (%q): nothing to upgrade", s.To)
		}
		v.artifact(s.Artifact)
		if s.Maintenance != nil {
			v.add("spec.maintenance", "only for kind Maintenance")
		}
	case KindInstall:
		if s.From != "" {
			v.add("spec.from", "an install puts a first release on an empty target: no from (use kind Upgrade)")
		}
		v.version("spec.to", s.To, true)
		v.artifact(s.Artifact)
		if s.Maintenance != nil {
			v.add("spec.maintenance", "only for kind Maintenance")
		}
	case KindMaintenance:
		v.version("spec.from", s.From, false)
		if s.To != "" {
			v.add("spec.to", "a maintenance run does not change the version")
		}
		if s.Artifact != (Artifact{}) {
			v.add("spec.artifact", "a maintenance run installs nothing")
		}
		v.maintenance(s.Maintenance)
		if r.Restores() && s.Backup.Skip {
			v.add("spec.backup.skip", "a restore first backs up what it replaces, so that it can be undone")
		}
	case "":
		v.add("kind", "required: Upgrade, Install or Maintenance")
	default:
		v.add("kind", "%q: must be Upgrade, Install or Maintenance", r.Kind)
	}
	v.targets(s.Targets, s.Selector)
	v.rollout(r.Kind, s.Rollout, len(s.Targets))
	seen := map[string]bool{}
	for i, team := range s.Notify {
		p := fmt.Sprintf("spec.notify[%d]", i)
		v.name(p, team)
		if seen[team] {
			v.add(p, "%q listed twice", team)
		}
		seen[team] = true
	}
	for _, t := range []struct {
		path string
		d    Duration
	}{
		{"spec.timeouts.precheck", s.Timeouts.Precheck}, {"spec.timeouts.backup", s.Timeouts.Backup},
		{"spec.timeouts.deploy", s.Timeouts.Deploy}, {"spec.timeouts.verify", s.Timeouts.Verify},
		{"spec.timeouts.rollback", s.Timeouts.Rollback},
	} {
		if t.d.Duration <= 0 || t.d.Duration > MaxPhaseLimit {
			v.add(t.path, "must be between 1s and %s, got %s", MaxPhaseLimit, t.d)
		}
	}
	v.verify("spec.verify", s.Verify)
	v.plan(s.Plan)
	if s.Confirm != nil {
		v.confirm("spec.confirm", *s.Confirm)
	}
	if s.Announce != nil {
		v.announce("spec.announce", *s.Announce)
	}
	for i, w := range s.Windows {
		if _, err := w.Compile(); err != nil {
			v.add(fmt.Sprintf("spec.windows[%d]", i), "%v", err)
		}
	}
	return v.err()
}

type validator struct{ problems []Problem }

func (v *validator) add(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) err() error {
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{v.problems}
}

func (v *validator) name(path, s string) {
	switch {
	case s == "":
		v.add(path, "required")
	case !nameRE.MatchString(s):
		v.add(path, "%q: lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit", s)
	}
}

func (v *validator) version(path, s string, required bool) {
	switch {
	case s == "" && required:
		v.add(path, "required")
	case s != "" && !versionRE.MatchString(s):
		v.add(path, "%q: letters, digits, '.', '_', '+' and '-' only, starting with a letter or digit", s)
	}
}

func (v *validator) artifact(a Artifact) {
	if a.URL == "" {
		v.add("spec.artifact.url", "required")
	} else if err := CheckArtifactURL(a.URL); err != nil {
		v.add("spec.artifact.url", "%v", err)
	}
	if err := CheckDigest(a.Digest); err != nil {
		v.add("spec.artifact.digest", "%v", err)
	}
	if a.Signature != "" {
		if err := CheckArtifactURL(a.Signature); err != nil {
			v.add("spec.artifact.signature", "%v", err)
		}
	}
}

// CheckArtifactURL checks the URL of a package or of its signature: file,
// http, https or objectstore (objectstore://BUCKET/NAME).
func CheckArtifactURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return err
	case u.Scheme != "file" && u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "objectstore":
		return fmt.Errorf("scheme %q: must be file, http, https or objectstore", u.Scheme)
	case u.Scheme == "file" && u.Path == "":
		return fmt.Errorf("a file URL needs an absolute path, e.g. file:///srv/pkg.tar.gz")
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host == "":
		return fmt.Errorf("an %s URL needs a host", u.Scheme)
	case u.Scheme == "objectstore" && (!bucketRE.MatchString(u.Host) || strings.Trim(u.Path, "/") == ""):
		return fmt.Errorf("an objectstore URL is objectstore://BUCKET/NAME, the bucket of letters, digits, '-' and '_'")
	}
	return nil
}

// CheckDigest checks the form "<algorithm>:<lower-case hex>".
func CheckDigest(d string) error {
	if d == "" {
		return fmt.Errorf("required")
	}
	alg, hex, ok := strings.Cut(d, ":")
	n, known := digestLen[alg]
	switch {
	case !ok || !known:
		return fmt.Errorf("%q: must be sha256:<hex>, sha512:<hex> or md5:<hex>", d)
	case len(hex) != n || !hexRE.MatchString(hex):
		return fmt.Errorf("%q: a %s digest is %d lower-case hex digits", d, alg, n)
	}
	return nil
}

func (v *validator) targets(ts []string, selector string) {
	if selector != "" {
		if _, err := labels.ParseSelector(selector); err != nil {
			v.add("spec.selector", "%s", strings.TrimPrefix(err.Error(), labels.ErrSelector.Error()+" "))
		}
		if len(ts) > 0 {
			v.add("spec.selector", "name the targets in spec.targets or choose them by spec.selector, not both")
		}
		return
	}
	if len(ts) == 0 {
		v.add("spec.targets", "at least one target is required (or spec.selector to choose them by label)")
	}
	if len(ts) > MaxTargets {
		v.add("spec.targets", "%d targets, limit %d", len(ts), MaxTargets)
	}
	seen := map[string]bool{}
	for i, t := range ts {
		p := fmt.Sprintf("spec.targets[%d]", i)
		v.name(p, t)
		if seen[t] {
			v.add(p, "%q listed twice", t)
		}
		seen[t] = true
	}
}

func (v *validator) maintenance(m *Maintenance) {
	if m == nil || len(m.Actions) == 0 {
		v.add("spec.maintenance.actions", "at least one of %s is required", strings.Join(MaintenanceActions, ", "))
		return
	}
	seen := map[string]bool{}
	for i, a := range m.Actions {
		p := fmt.Sprintf("spec.maintenance.actions[%d]", i)
		if !contains(MaintenanceActions, a) {
			v.add(p, "%q: must be one of %s", a, strings.Join(MaintenanceActions, ", "))
		}
		if seen[a] {
			v.add(p, "%q listed twice", a)
		}
		seen[a] = true
	}
	if len(m.Purge) > 0 && !seen[ActionPurge] {
		v.add("spec.maintenance.purge", "names purge rules, but the actions do not include purge")
	}
	for i, name := range m.Purge {
		v.name(fmt.Sprintf("spec.maintenance.purge[%d]", i), name)
	}
	switch {
	case seen[ActionRestore] && len(m.Actions) > 1:
		v.add("spec.maintenance.actions", "restore is a run of its own: no other action with it")
	case seen[ActionRestore] && m.Backup == "":
		v.add("spec.maintenance.backup", "required with restore: the id of the saga whose backup to restore")
	case !seen[ActionRestore] && m.Backup != "":
		v.add("spec.maintenance.backup", "names a backup to restore, but the actions do not include restore")
	}
	if m.Backup != "" && !sagaRE.MatchString(m.Backup) {
		v.add("spec.maintenance.backup", "%q is not a saga id: letters, digits, '_' and '-', at most 64", m.Backup)
	}
}

func (v *validator) rollout(kind Kind, ro Rollout, targets int) {
	if ro.BatchSize < 1 {
		v.add("spec.rollout.batchSize", "must be at least 1, got %d", ro.BatchSize)
	}
	switch p := ro.BatchPercent; {
	case p < 0 || p > 100:
		v.add("spec.rollout.batchPercent", "must be between 1 and 100, got %d", p)
	case p > 0 && ro.BatchSize > 0 && ro.BatchSize != PercentSize(targets, p):
		v.add("spec.rollout.batchPercent", "set batchSize or batchPercent, not both")
	}
	switch p := ro.MaxFailedPercent; {
	case p < 0 || p > 100:
		v.add("spec.rollout.maxFailedPercent", "must be between 0 and 100, got %d", p)
	case p > 0 && !kind.Installs():
		v.add("spec.rollout.maxFailedPercent", "only for an Upgrade or an Install: a %s has no roll-back of one target", kind)
	}
}
