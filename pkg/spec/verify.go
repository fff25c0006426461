package spec

import (
	"fmt"
	"math"
	"time"
)

// Limits of the verification settings.
const (
	// MaxWatch bounds a watch period.
	MaxWatch = 24 * time.Hour
	// MaxAnalyses is how many analyses a request or a policy may select.
	MaxAnalyses = 16
)

// Verify tunes the verification of a request, or of every request of an
// environment (the coordinator's policy). It selects what the targets'
// configuration declares; it cannot bring a query, a URL or a credential of
// its own.
type Verify struct {
	// Watch keeps the analyses (and the health probes) running on every
	// target for this long after the last batch verified; a failure in it
	// rolls the whole saga back. The longer of the request's and the
	// environment's applies.
	Watch Duration `json:"watch,omitzero"`
	// Analyses selects analyses declared in the targets' configuration,
	// optional ones included, and may set their thresholds.
	Analyses []AnalysisRef `json:"analyses,omitempty"`
}

// AnalysisRef selects an analysis by name; Threshold, if set, replaces the
// number in its condition ("< 0.05").
type AnalysisRef struct {
	Name      string   `json:"name"`
	Threshold *float64 `json:"threshold,omitempty"`
}

// Check returns the problems of the settings, their paths under prefix
// ("spec.verify").
func (v Verify) Check(prefix string) []Problem {
	var val validator
	val.verify(prefix, v)
	return val.problems
}

func (v *validator) verify(prefix string, s Verify) {
	if s.Watch.Duration < 0 || s.Watch.Duration > MaxWatch {
		v.add(prefix+".watch", "must be between 0 and %s, got %s", MaxWatch, s.Watch)
	}
	if len(s.Analyses) > MaxAnalyses {
		v.add(prefix+".analyses", "%d analyses, limit %d", len(s.Analyses), MaxAnalyses)
	}
	seen := map[string]bool{}
	for i, a := range s.Analyses {
		p := fmt.Sprintf("%s.analyses[%d]", prefix, i)
		v.name(p+".name", a.Name)
		if seen[a.Name] {
			v.add(p+".name", "%q selected twice", a.Name)
		}
		seen[a.Name] = true
		if a.Threshold != nil && (math.IsNaN(*a.Threshold) || math.IsInf(*a.Threshold, 0)) {
			v.add(p+".threshold", "must be a number")
		}
	}
}
