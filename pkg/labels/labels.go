// Package labels is the labels of a target and the selectors that choose
// targets by them: pure, shared by the request (pkg/spec), the targets file
// and the registry of targets (pkg/fleet).
package labels

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// ErrSelector wraps every problem of a selector.
var ErrSelector = errors.New("bad selector")

// Label keys are lower-case letters, digits, '-', '_', '.' and '/'; values
// letters, digits, '-', '_' and '.', possibly empty: the characters that
// need no quoting in a selector.
var (
	keyRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$`)
	valueRE = regexp.MustCompile(`^[A-Za-z0-9._-]{0,63}$`)
)

// MaxLabels bounds the labels of one target.
const MaxLabels = 32

// CheckLabels lists what is wrong with a target's labels, sorted.
func CheckLabels(labels map[string]string) []string {
	var problems []string
	if len(labels) > MaxLabels {
		problems = append(problems, fmt.Sprintf("%d labels, limit %d", len(labels), MaxLabels))
	}
	for k, v := range labels {
		if !keyRE.MatchString(k) {
			problems = append(problems, fmt.Sprintf("label %q: keys are lower-case letters, digits, '-', '_', '.' and '/', at most 63", k))
		}
		if !valueRE.MatchString(v) {
			problems = append(problems, fmt.Sprintf("label %s=%q: values are letters, digits, '-', '_' and '.', at most 63", k, v))
		}
	}
	sort.Strings(problems)
	return problems
}

// Requirement is one term of a selector: key=value, or key!=value.
type Requirement struct {
	Key   string
	Value string
	Not   bool
}

func (r Requirement) String() string {
	if r.Not {
		return r.Key + "!=" + r.Value
	}
	return r.Key + "=" + r.Value
}

// Selector chooses targets by their labels: every requirement must hold
// (a comma is "and"). A key!=value requirement holds for a target without
// the key.
type Selector []Requirement

// String is the selector in its canonical form.
func (s Selector) String() string {
	parts := make([]string, len(s))
	for i, r := range s {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// Matches reports whether labels satisfy every requirement.
func (s Selector) Matches(labels map[string]string) bool {
	for _, r := range s {
		v, ok := labels[r.Key]
		if r.Not == (ok && v == r.Value) {
			return false
		}
	}
	return true
}

// ParseSelector reads "role=web,zone!=dmz". Every problem is named; an
// empty selector is one (it would choose every target).
func ParseSelector(s string) (Selector, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: empty: name at least one label, e.g. role=web", ErrSelector)
	}
	var (
		sel      Selector
		problems []string
	)
	for i, term := range strings.Split(s, ",") {
		term = strings.TrimSpace(term)
		var r Requirement
		k, v, ok := strings.Cut(term, "!=")
		if ok {
			r = Requirement{Key: k, Value: v, Not: true}
		} else if k, v, ok = strings.Cut(term, "="); ok {
			r = Requirement{Key: k, Value: v}
		} else {
			problems = append(problems, fmt.Sprintf("term %d %q: want key=value or key!=value", i+1, term))
			continue
		}
		r.Key, r.Value = strings.TrimSpace(r.Key), strings.TrimSpace(r.Value)
		if !keyRE.MatchString(r.Key) {
			problems = append(problems, fmt.Sprintf("term %d %q: key %q: lower-case letters, digits, '-', '_', '.' and '/', at most 63", i+1, term, r.Key))
		}
		if strings.ContainsAny(r.Value, "=!") || !valueRE.MatchString(r.Value) {
			problems = append(problems, fmt.Sprintf("term %d %q: value %q: letters, digits, '-', '_' and '.', at most 63", i+1, term, r.Value))
		}
		sel = append(sel, r)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w %q: %s", ErrSelector, s, strings.Join(problems, "; "))
	}
	return sel, nil
}
