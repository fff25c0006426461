// Package spec is the upgrade and maintenance request a user submits: its
// schema (apiVersion upshift/v1), parsing from YAML or JSON, defaults and
// validation that reports every problem at once with its field path.
//
// A request names software, versions, an artifact and targets. It never
// carries commands or secrets: how to act on a target (its hooks, its
// secrets) is configured where the target is served, and the package it
// installs can only come from the artifact sources that host allows. So a
// publisher cannot make a host run a command of its choosing, nor read a file
// or reach a server of its choosing.
package spec

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// APIVersion is the only version this build accepts.
const APIVersion = "upshift/v1"

// Kind is what the request asks for.
type Kind string

// Request kinds.
const (
	KindUpgrade Kind = "Upgrade"
	// KindInstall puts a first release on a target that has none: no
	// "from", no backup (there is nothing to back up), and its roll-back
	// leaves the target empty again.
	KindInstall     Kind = "Install"
	KindMaintenance Kind = "Maintenance"
)

// Installs reports whether the request puts a release on its targets.
func (k Kind) Installs() bool { return k == KindUpgrade || k == KindInstall }

// Request is one upgrade or maintenance run, as submitted.
type Request struct {
	APIVersion string   `json:"apiVersion"`
	Kind       Kind     `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
}

// Metadata says who asks and where.
type Metadata struct {
	// Name is a human label, e.g. "billing 4.2 rollout".
	Name string `json:"name,omitempty"`
	// Team owns the request; it is published on that team's subject.
	Team string `json:"team"`
	// Environment names where the targets live, e.g. test or production.
	Environment string            `json:"environment"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// Spec is what to do.
type Spec struct {
	Software string   `json:"software"`
	From     string   `json:"from,omitempty"`
	To       string   `json:"to,omitempty"`
	Artifact Artifact `json:"artifact,omitzero"`
	// Targets are names registered in the config of the service instances
	// that serve them. A request names them or gives a Selector, not both;
	// the coordinator records here the targets a selector chose.
	Targets []string `json:"targets"`
	// Selector chooses the targets by the labels their services announce
	// in the registry of targets: "role=web,zone!=dmz" (a comma is "and").
	// The coordinator resolves it once, when it accepts the request.
	Selector string  `json:"selector,omitempty"`
	Rollout  Rollout `json:"rollout,omitzero"`
	// Notify lists the teams told of every state change and every failed
	// step; the owning team is always among them.
	Notify      []string     `json:"notify,omitempty"`
	Timeouts    Timeouts     `json:"timeouts,omitzero"`
	Maintenance *Maintenance `json:"maintenance,omitempty"`
	Backup      Backup       `json:"backup,omitzero"`
	// Approval, when required, holds the saga after precheck until an
	// operator approves it (the environment's policy may require it too).
	Approval Approval `json:"approval,omitzero"`
	// Confirm names roles whose people must confirm before the backup
	// starts (the environment's policy may name more).
	Confirm *Confirm `json:"confirm,omitempty"`
	// Announce tells business teams of the plan before the window opens.
	Announce *Announce `json:"announce,omitempty"`
	// Windows the backup and deploy may start in; with the environment's
	// windows, both must be open.
	Windows []Window `json:"windows,omitempty"`
	// Deadline, when set, fails the saga if no window opens before it.
	Deadline time.Time `json:"deadline,omitzero"`
	// Verify selects analyses and sets a watch period after the last batch.
	Verify Verify `json:"verify,omitzero"`
	// DryRun runs the precheck alone, through the same services, and ends
	// the saga "checked" if every check passed: nothing is backed up or
	// deployed, and no approval or window is waited for.
	DryRun bool `json:"dryRun,omitempty"`
	// Plan is what only a person knows, for the implementation plan; it
	// changes nothing the saga does.
	Plan *Plan `json:"plan,omitempty"`
}

// Artifact is the release package.
type Artifact struct {
	// URL is file://, http://, https:// or objectstore://BUCKET/NAME (a
	// NATS Object Store).
	URL string `json:"url"`
	// Digest is "<algorithm>:<hex>", algorithm sha256, sha512 or md5.
	Digest string `json:"digest"`
	// Signature is the URL of a detached minisign signature of the package,
	// from the same kinds of source; precheck verifies it against the keys
	// its operator trusts. An environment's policy may require one.
	Signature string `json:"signature,omitempty"`
}

// Rollout says how targets are grouped into batches.
type Rollout struct {
	// BatchSize is how many targets are deployed and verified together; a
	// failed batch rolls back every batch before it too. Default 1.
	BatchSize int `json:"batchSize,omitempty"`
	// BatchPercent sizes each batch as a share of the targets instead
	// (rounded up): 5 deploys 5% of them at a time. Not with BatchSize.
	BatchPercent int `json:"batchPercent,omitempty"`
	// MaxFailedPercent is the share of a batch's targets that may fail
	// (their deploy or verification) without rolling the saga back: each
	// such target is rolled back alone at once and left out of the rest,
	// and the saga goes on while at most this share of every batch failed
	// (rounded down: 2% of a batch of 20 is none). A batch in which every
	// target failed always rolls back. Default 0: any failure rolls back
	// every batch. Upgrades and installs only: a maintenance run or a
	// restore has no compensation of its own per target.
	MaxFailedPercent int `json:"maxFailedPercent,omitempty"`
}

// Tolerated is how many targets of a batch of n may fail.
func (r Rollout) Tolerated(n int) int { return n * r.MaxFailedPercent / 100 }

// PercentSize is the batch size a BatchPercent gives for n targets.
func PercentSize(n, percent int) int { return max((n*percent+99)/100, 1) }

// Timeouts bound each phase; a phase that does not finish in time fails.
type Timeouts struct {
	Precheck Duration `json:"precheck,omitzero"`
	Backup   Duration `json:"backup,omitzero"`
	Deploy   Duration `json:"deploy,omitzero"`
	Verify   Duration `json:"verify,omitzero"`
	// Rollback bounds each compensation step.
	Rollback Duration `json:"rollback,omitzero"`
}

// Maintenance lists the actions of a Maintenance request. What each does on
// a target (which databases, which purge statements, which log and
// configuration files) is in the target's configuration on its host, never
// in the request (docs/targets.md, maintenance).
type Maintenance struct {
	// Actions, run in this order on each target (MaintenanceActions).
	Actions []string `json:"actions"`
	// Purge names the target's purge rules the purge action runs; none:
	// every rule the target declares. Names only: a request never carries
	// SQL.
	Purge []string `json:"purge,omitempty"`
	// Backup is the id of the earlier saga whose backup the restore action
	// puts back on every target; only with restore.
	Backup string `json:"backup,omitempty"`
}

// Maintenance actions.
const (
	ActionReindex        = "reindex"         // REINDEX each table of the target's databases
	ActionAnalyze        = "analyze"         // ANALYZE them
	ActionVacuum         = "vacuum"          // VACUUM (ANALYZE) them
	ActionPurge          = "purge"           // the clean-up statements the target declares
	ActionArchiveLogs    = "archive-logs"    // compress and move old log files, check logging still writes
	ActionConfigDrift    = "config-drift"    // compare configuration files with the recorded baseline
	ActionConfigBaseline = "config-baseline" // record the configuration files as the new baseline
	// ActionRestore puts back the backup of an earlier saga
	// (Maintenance.Backup), files and databases: a restore by hand. The
	// backup service does it, not deploy; it is the request's only action.
	ActionRestore = "restore"
)

// MaintenanceActions are the actions a Maintenance request may name.
var MaintenanceActions = []string{ActionReindex, ActionAnalyze, ActionVacuum, ActionPurge,
	ActionArchiveLogs, ActionConfigDrift, ActionConfigBaseline, ActionRestore}

// DataActions are the maintenance actions that change the target's data
// (rows, log files, a whole restored tree): a run naming one is backed up first, and a failure
// after it is undone by restoring that backup. The others change no data
// (reindex, analyze and vacuum rebuild what PostgreSQL derives from it; a
// drift check only reads; a baseline is upshift's own record).
var DataActions = []string{ActionPurge, ActionArchiveLogs, ActionRestore}

// ChangesData reports whether any of actions changes the target's data.
func ChangesData(actions []string) bool {
	for _, a := range actions {
		if contains(DataActions, a) {
			return true
		}
	}
	return false
}

// Backup tunes the backup phase.
type Backup struct {
	// Skip leaves the backup phase out (stateless software); roll-back
	// then only switches releases back.
	Skip bool `json:"skip,omitempty"`
}

// Default time-outs, used where a request sets none.
var DefaultTimeouts = Timeouts{
	Precheck: Duration{5 * time.Minute},
	Backup:   Duration{30 * time.Minute},
	Deploy:   Duration{15 * time.Minute},
	Verify:   Duration{10 * time.Minute},
	Rollback: Duration{15 * time.Minute},
}

// WithDefaults returns the request with every optional setting filled in.
func (r Request) WithDefaults() Request {
	if r.Spec.Rollout.BatchSize == 0 {
		r.Spec.Rollout.BatchSize = 1
		if p := r.Spec.Rollout.BatchPercent; p > 0 && p <= 100 {
			r.Spec.Rollout.BatchSize = PercentSize(len(r.Spec.Targets), p)
		}
	}
	t := &r.Spec.Timeouts
	for _, f := range []struct{ v, d *Duration }{
		{&t.Precheck, &DefaultTimeouts.Precheck}, {&t.Backup, &DefaultTimeouts.Backup},
		{&t.Deploy, &DefaultTimeouts.Deploy}, {&t.Verify, &DefaultTimeouts.Verify},
		{&t.Rollback, &DefaultTimeouts.Rollback},
	} {
		if f.v.Duration == 0 {
			*f.v = *f.d
		}
	}
	if nameRE.MatchString(r.Metadata.Team) && !contains(r.Spec.Notify, r.Metadata.Team) {
		r.Spec.Notify = append([]string{r.Metadata.Team}, r.Spec.Notify...)
	}
	return r
}

// Batches splits the targets into rollout batches, in request order.
func (r Request) Batches() [][]string {
	size := max(r.Spec.Rollout.BatchSize, 1)
	var out [][]string
	for i := 0; i < len(r.Spec.Targets); i += size {
		out = append(out, r.Spec.Targets[i:min(i+size, len(r.Spec.Targets))])
	}
	return out
}

// Title is a one-line description for humans.
func (r Request) Title() string {
	if r.Spec.DryRun {
		r.Spec.DryRun = false
		return "dry run of the " + r.Title()
	}
	switch r.Kind {
	case KindMaintenance:
		if r.Restores() {
			return fmt.Sprintf("restore of %s from the backup of saga %s", r.Spec.Software, r.Spec.Maintenance.Backup)
		}
		return fmt.Sprintf("maintenance of %s (%s)", r.Spec.Software, strings.Join(r.Actions(), ", "))
	case KindInstall:
		return fmt.Sprintf("first install of %s %s", r.Spec.Software, r.Spec.To)
	default:
		return fmt.Sprintf("upgrade of %s from %s to %s", r.Spec.Software, r.Spec.From, r.Spec.To)
	}
}

// Restores reports whether the request is a restore by hand: a
// Maintenance run whose action is restore.
func (r Request) Restores() bool {
	return r.Kind == KindMaintenance && contains(r.Actions(), ActionRestore)
}

// RestoreFrom is the saga whose backup a restore puts back, if any.
func (r Request) RestoreFrom() string {
	if !r.Restores() {
		return ""
	}
	return r.Spec.Maintenance.Backup
}

// Actions returns the maintenance actions, if any.
func (r Request) Actions() []string {
	if r.Spec.Maintenance == nil {
		return nil
	}
	return r.Spec.Maintenance.Actions
}

// Duration is a time.Duration written as "90s", "5m" or "1h30m".
type Duration struct{ time.Duration }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"5m\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("a duration is a string such as \"5m\": %q", s)
	}
	d.Duration = v
	return nil
}

// IsZero lets omitzero leave unset durations out.
func (d Duration) IsZero() bool { return d.Duration == 0 }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
