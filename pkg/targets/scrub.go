package targets

import (
	"sort"
	"strings"
)

// Redacted replaces a secret's value in text that leaves the host.
const Redacted = "[redacted]"

// MinSecret is the shortest value scrubbed: a shorter one ("1", "yes") would
// redact ordinary words, and is no secret worth the name.
const MinSecret = 4

// Secrets lists the target's secret values: every Env value (all of them
// are Secret), at least MinSecret long.
func (t Target) Secrets() []string {
	var out []string
	for _, v := range t.Env {
		if len(v) >= MinSecret {
			out = append(out, string(v))
		}
	}
	return out
}

// Scrub replaces each of the target's secret values in s with Redacted.
func (t Target) Scrub(s string) string { return scrub(s, t.Secrets()) }

// Scrub replaces the secret values of every target of the registry in s:
// what one target's hook prints may quote another's.
func (r *Registry) Scrub(s string) string {
	if r == nil {
		return s
	}
	var all []string
	for _, t := range r.targets {
		all = append(all, t.Secrets()...)
	}
	return scrub(s, all)
}

// scrub replaces the longest values first, so a secret that contains
// another is not left half shown.
func scrub(s string, secrets []string) string {
	if len(secrets) == 0 || s == "" {
		return s
	}
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	for _, v := range secrets {
		s = strings.ReplaceAll(s, v, Redacted)
	}
	return s
}
