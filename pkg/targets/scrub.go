package targets

import (
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Redacted replaces a secret's value in text that leaves the host.
const Redacted = "[redacted]"

// MinSecret is the shortest value scrubbed: a shorter one ("1", "yes") would
// redact ordinary words, and is no secret worth the name.
const MinSecret = 4

// Secrets lists the target's secret values: every Env value (all of them
// are Secret), and each declared database's DSN and the password in it,
// read where the configuration says (one that cannot be read now has
// nothing to leak); those at least MinSecret long.
func (t Target) Secrets() []string {
	var out []string
	add := func(v string) {
		if len(v) >= MinSecret {
			out = append(out, v)
		}
	}
	for _, v := range t.Env {
		add(string(v))
	}
	for _, d := range t.Databases {
		dsn, err := d.DSN()
		if err != nil {
			continue
		}
		add(string(dsn))
		if cfg, err := pgconn.ParseConfig(string(dsn)); err == nil {
			add(cfg.Password)
		}
	}
	return out
}

// Scrub replaces each of the target's secret values in s with Redacted.
func (t Target) Scrub(s string) string { return scrub(s, t.Secrets()) }

// Scrub replaces the secret values of every target of the registry in s:
// what one target's hook prints may quote another's. The values are read
// once, at the first call.
func (r *Registry) Scrub(s string) string {
	if r == nil {
		return s
	}
	r.secretsOnce.Do(func() {
		for _, t := range r.targets {
			r.secrets = append(r.secrets, t.Secrets()...)
		}
	})
	return scrub(s, r.secrets)
}

// scrub replaces the longest values first, so a secret that contains
// another is not left half shown.
func scrub(s string, secrets []string) string {
	if len(secrets) == 0 || s == "" {
		return s
	}
	secrets = slices.Clone(secrets)
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	for _, v := range secrets {
		s = strings.ReplaceAll(s, v, Redacted)
	}
	return s
}
