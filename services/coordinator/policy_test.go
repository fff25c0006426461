package coordinator_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/services/coordinator"
)

// An environment's verify settings load, and bad ones are refused with the
// environment named.
func TestPolicyVerifySettings(t *testing.T) {
	t.Parallel()
	load := func(doc string) (coordinator.Policy, error) {
		f := filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(f, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return coordinator.LoadPolicy(f)
	}
	p, err := load(`environments: {production: {verify: {watch: 15m, analyses: [{name: error-rate, threshold: 0.01}]}}}`)
	if err != nil {
		t.Fatal(err)
	}
	v := p.Environments["production"].Verify
	if v.Watch.Duration != 15*time.Minute || len(v.Analyses) != 1 || *v.Analyses[0].Threshold != 0.01 {
		t.Fatalf("verify %+v", v)
	}
	for doc, says := range map[string]string{
		`environments: {production: {verify: {watch: 48h}}}`:                         "environment production: verify.watch: must be between 0 and 24h",
		`environments: {production: {verify: {analyses: [{name: Errors}]}}}`:         "verify.analyses[0].name",
		`environments: {production: {verify: {analyses: [{name: e, query: "up"}]}}}`: "unknown field",
		`environments: {production: {verify: {analyses: [{name: e}, {name: e}]}}}`:   "selected twice",
	} {
		if _, err := load(doc); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v, want %q", doc, err, says)
		}
	}
}

// An environment's confirmation roles and announcement load, and bad ones
// are refused, every problem named with its environment.
func TestPolicyConfirmAndAnnounce(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "policy.yaml")
	write := func(doc string) {
		if err := os.WriteFile(f, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`environments: {production: {confirm: {roles: [ops, dba], timeout: 4h}, announce: {before: 24h, teams: [sales]}}}`)
	p, err := coordinator.LoadPolicy(f)
	if err != nil {
		t.Fatal(err)
	}
	env := p.Environments["production"]
	if env.Confirm == nil || strings.Join(env.Confirm.Roles, " ") != "ops dba" || env.Confirm.Timeout.Duration != 4*time.Hour ||
		env.Announce == nil || env.Announce.Before.Duration != 24*time.Hour || env.Announce.Teams[0] != "sales" {
		t.Fatalf("environment %+v", env)
	}
	write(`environments: {production: {confirm: {roles: [DBA, ops, ops]}, announce: {before: -1h, teams: []}}}`)
	_, err = coordinator.LoadPolicy(f)
	for _, says := range []string{"environment production: confirm.roles[0]", "confirm.roles[2]: \"ops\" listed twice",
		"announce.before: must be between 0", "announce.teams: at least one team"} {
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%v, want %q", err, says)
		}
	}
}
