package coordinator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// Policy is what the operators of this coordinator decide for every
// request, per environment.
type Policy struct {
	// Environments holds each environment's rules; an environment that is
	// not listed has none.
	Environments map[string]Environment `json:"environments,omitempty"`
	// ApprovalEnvironments need an approval too (the --approval-environments
	// shortcut).
	ApprovalEnvironments []string `json:"-"`
	// ApprovalTimeout is the default wait for an approval.
	ApprovalTimeout time.Duration `json:"-"`
	// SignatureEnvironments require a signed artifact unless the policy
	// file says otherwise for one (requireSignature: false): the
	// --signature-environments flag, "production" by default.
	SignatureEnvironments []string `json:"-"`
}

// Environment are the rules of one environment.
type Environment struct {
	// Approval holds its sagas after precheck until an operator approves.
	Approval        bool          `json:"approval,omitempty"`
	ApprovalTimeout spec.Duration `json:"approvalTimeout,omitzero"`
	// Windows are the only times its backups and deploys may start; a
	// request's own windows must be open as well.
	Windows []spec.Window `json:"windows,omitempty"`
	// Rehearsal refuses a request unless the same artifact succeeded in
	// another environment first (plan 3.2.3: rehearse in test).
	Rehearsal *Rehearsal `json:"rehearsal,omitempty"`
	// RequireSignature refuses an upgrade whose artifact has no signature
	// (spec.artifact.signature); precheck verifies the signature. Unset:
	// required if the environment is among SignatureEnvironments.
	RequireSignature *bool `json:"requireSignature,omitempty"`
	// Verify of every request: a watch period after the last batch (the
	// longer of this and the request's applies) and analyses, declared in
	// the targets' configuration, that every verification runs.
	Verify spec.Verify `json:"verify,omitzero"`
	// Confirm names roles that must confirm before every backup here,
	// beside the request's own (spec.confirm).
	Confirm *spec.Confirm `json:"confirm,omitempty"`
	// Announce tells these business teams of every plan here, a set time
	// before the window opens, beside the request's own (spec.announce).
	Announce *spec.Announce `json:"announce,omitempty"`
}

// Rehearsal names where, and how recently, an artifact must have succeeded.
type Rehearsal struct {
	Environment string        `json:"environment"`
	Within      spec.Duration `json:"within,omitzero"` // zero: however long ago
}

// ErrRefused is matched by a request the policy does not admit.
var ErrRefused = errors.New("refused by policy")

// LoadPolicy reads a policy file (YAML or JSON):
//
//	environments:
//	  production:
//	    approval: true
//	    approvalTimeout: 24h
//	    windows: [{days: [sat, sun], start: "22:00", end: "04:00", timeZone: Europe/Berlin}]
//	    rehearsal: {environment: test, within: 720h}
//	    requireSignature: true
//	    verify: {watch: 15m, analyses: [{name: error-rate, threshold: 0.01}]}
//	    confirm: {roles: [ops, dba], timeout: 4h}
//	    announce: {before: 24h, teams: [sales, support]}
func LoadPolicy(path string) (Policy, error) {
	var p Policy
	b, err := os.ReadFile(path)
	if err != nil {
		return p, fmt.Errorf("policy: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		return p, fmt.Errorf("policy %s: %w", path, err)
	}
	return p, p.Check()
}

// Check reports what is wrong with a policy.
func (p Policy) Check() error {
	var errs []error
	if p.ApprovalTimeout > saga.WindowHorizon {
		errs = append(errs, fmt.Errorf("an approval time-out longer than %s", saga.WindowHorizon))
	}
	for name, e := range p.Environments {
		if _, err := spec.CompileWindows(e.Windows); err != nil {
			errs = append(errs, fmt.Errorf("environment %s: %w", name, err))
		}
		if e.ApprovalTimeout.Duration > saga.WindowHorizon {
			errs = append(errs, fmt.Errorf("environment %s: an approval time-out longer than %s", name, saga.WindowHorizon))
		}
		for _, p := range e.Verify.Check("verify") {
			errs = append(errs, fmt.Errorf("environment %s: %s", name, p))
		}
		if e.Confirm != nil {
			for _, p := range e.Confirm.Check("confirm") {
				errs = append(errs, fmt.Errorf("environment %s: %s", name, p))
			}
		}
		if e.Announce != nil {
			for _, p := range e.Announce.Check("announce") {
				errs = append(errs, fmt.Errorf("environment %s: %s", name, p))
			}
		}
		if e.Rehearsal != nil && (e.Rehearsal.Environment == "" || e.Rehearsal.Environment == name) {
			errs = append(errs, fmt.Errorf("environment %s: a rehearsal happens in another environment", name))
		}
	}
	return errors.Join(errs...)
}

func (p Policy) options(r spec.Request) saga.Options {
	env := p.Environments[r.Metadata.Environment]
	timeout := env.ApprovalTimeout.Duration
	if timeout == 0 {
		timeout = p.ApprovalTimeout
	}
	o := saga.Options{
		RequireApproval: env.Approval || slices.Contains(p.ApprovalEnvironments, r.Metadata.Environment),
		ApprovalTimeout: timeout,
		Windows:         env.Windows,
		Verify:          env.Verify,
	}
	// saga.New adds the request's roles and teams to these.
	if env.Confirm != nil {
		o.Confirm = *env.Confirm
	}
	if env.Announce != nil {
		o.Announce = *env.Announce
	}
	return o
}

// signatureRequired says whether an upgrade in env must be signed.
func (p Policy) signatureRequired(env string) bool {
	if e, ok := p.Environments[env]; ok && e.RequireSignature != nil {
		return *e.RequireSignature
	}
	return slices.Contains(p.SignatureEnvironments, env)
}

// admit refuses a request the policy does not allow, with the reason.
func (p Policy) admit(ctx context.Context, store sagastore.Store, r spec.Request, now time.Time) error {
	env := p.Environments[r.Metadata.Environment]
	if r.Kind.Installs() && r.Spec.Artifact.Signature == "" && p.signatureRequired(r.Metadata.Environment) {
		return fmt.Errorf("%w: %s requires a signed artifact: spec.artifact.signature names none", ErrRefused, r.Metadata.Environment)
	}
	if env.Rehearsal == nil || !r.Kind.Installs() {
		return nil // a maintenance run installs no artifact to rehearse
	}
	reh := env.Rehearsal
	// A listing is newest created first; with a time limit, any of the
	// latest rehearsals may be the one that finished most recently.
	limit := 1
	if reh.Within.Duration > 0 {
		limit = sagastore.DefaultLimit
	}
	done, err := store.List(ctx, sagastore.Filter{Environment: reh.Environment, Software: r.Spec.Software,
		Digest: r.Spec.Artifact.Digest, States: []saga.State{saga.StateSucceeded}, Limit: limit})
	// A saga that cannot be decoded proves nothing: the others decide.
	if _, err = sagastore.Skipped(err); err != nil {
		return fmt.Errorf("rehearsal gate: %w", err)
	}
	for _, d := range done {
		if reh.Within.Duration == 0 || now.Sub(d.UpdatedAt) <= reh.Within.Duration {
			return nil
		}
	}
	within := ""
	if reh.Within.Duration > 0 {
		within = " within the last " + reh.Within.String()
	}
	return fmt.Errorf("%w: %s requires a rehearsal: no upgrade of %s with artifact %s succeeded in %s%s; run it there first",
		ErrRefused, r.Metadata.Environment, r.Spec.Software, r.Spec.Artifact.Digest, reh.Environment, within)
}
