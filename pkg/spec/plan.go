package spec

import "fmt"

// Plan is what only a person knows about a change, for its implementation
// plan (`upshift plan`): who wrote, reviews and approves it, why it is made,
// what it touches beyond the targets. Everything is optional and nothing
// here changes what the saga does; a plan section without data says so.
type Plan struct {
	// Change is the change ticket, e.g. "CAB-1234".
	Change string `json:"change,omitempty"`
	// Version of the plan document, e.g. "1.0".
	Version    string `json:"version,omitempty"`
	Author     string `json:"author,omitempty"`
	Reviewer   string `json:"reviewer,omitempty"`
	Approver   string `json:"approver,omitempty"`
	Department string `json:"department,omitempty"`
	Remark     string `json:"remark,omitempty"`
	Purpose    string `json:"purpose,omitempty"`
	Background string `json:"background,omitempty"`
	// InstalledSince is when the installed version went live, as people
	// write it ("2025-03-01").
	InstalledSince string   `json:"installedSince,omitempty"`
	Modules        []string `json:"modules,omitempty"`
	Zones          []string `json:"zones,omitempty"`
	OutOfScope     []string `json:"outOfScope,omitempty"`
	KnownIssues    []string `json:"knownIssues,omitempty"`
	References     []string `json:"references,omitempty"`
	Needs          []string `json:"needs,omitempty"`
}

// Limits on a plan: it is printed, not parsed, but it travels in every
// event that carries the request.
const (
	MaxPlanField = 200  // a name, a ticket, a version
	MaxPlanText  = 4000 // purpose, background, remark
	MaxPlanItems = 50   // entries of each list
)

func (v *validator) plan(p *Plan) {
	if p == nil {
		return
	}
	for _, f := range []struct {
		path, s string
		limit   int
	}{
		{"change", p.Change, MaxPlanField}, {"version", p.Version, MaxPlanField},
		{"author", p.Author, MaxPlanField}, {"reviewer", p.Reviewer, MaxPlanField},
		{"approver", p.Approver, MaxPlanField}, {"department", p.Department, MaxPlanField},
		{"installedSince", p.InstalledSince, MaxPlanField},
		{"remark", p.Remark, MaxPlanText}, {"purpose", p.Purpose, MaxPlanText}, {"background", p.Background, MaxPlanText},
	} {
		if len(f.s) > f.limit {
			v.add("spec.plan."+f.path, "longer than %d characters", f.limit)
		}
	}
	for _, l := range []struct {
		path  string
		items []string
	}{
		{"modules", p.Modules}, {"zones", p.Zones}, {"outOfScope", p.OutOfScope},
		{"knownIssues", p.KnownIssues}, {"references", p.References}, {"needs", p.Needs},
	} {
		if len(l.items) > MaxPlanItems {
			v.add("spec.plan."+l.path, "more than %d entries", MaxPlanItems)
		}
		for i, s := range l.items {
			switch {
			case s == "":
				v.add(fmt.Sprintf("spec.plan.%s[%d]", l.path, i), "empty")
			case len(s) > MaxPlanText:
				v.add(fmt.Sprintf("spec.plan.%s[%d]", l.path, i), "longer than %d characters", MaxPlanText)
			}
		}
	}
}
