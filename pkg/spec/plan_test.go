package spec_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/spec"
)

func TestPlanSettings(t *testing.T) {
	t.Parallel()
	head := `{"apiVersion":"upshift/v1","kind":"Upgrade","metadata":{"team":"a","environment":"b"},
		"spec":{"software":"x","from":"1","to":"2","targets":["t"],"artifact":{"url":"file:///a","digest":"md5:d41d8cd98f00b204e9800998ecf8427e"},"plan":`
	r, err := spec.Parse([]byte(head + `{"change":"CAB-1","author":"Li Lei","modules":["billing-api"],"knownIssues":["slow report"]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p := r.Spec.Plan; p == nil || p.Change != "CAB-1" || p.Author != "Li Lei" || len(p.Modules) != 1 || len(p.KnownIssues) != 1 {
		t.Fatalf("plan %+v", r.Spec.Plan)
	}
	long := strings.Repeat("x", spec.MaxPlanText+1)
	many := `["` + strings.Repeat(`a","`, spec.MaxPlanItems) + `a"]`
	for _, tc := range []struct{ plan, path, says string }{
		{`{"author":"` + strings.Repeat("x", spec.MaxPlanField+1) + `"}`, "spec.plan.author", "longer than 200"},
		{`{"purpose":"` + long + `"}`, "spec.plan.purpose", "longer than 4000"},
		{`{"needs":["` + long + `"]}`, "spec.plan.needs[0]", "longer than 4000"},
		{`{"zones":["dmz",""]}`, "spec.plan.zones[1]", "empty"},
		{`{"references":` + many + `}`, "spec.plan.references", "more than 50"},
		{`{"script":"rm -rf /"}`, "spec.plan.script", "unknown field"},
	} {
		_, err := spec.Parse([]byte(head + tc.plan + `}}`))
		var verr *spec.ValidationError
		if !errors.As(err, &verr) {
			t.Fatalf("%s: err %v", tc.plan[:min(len(tc.plan), 40)], err)
		}
		found := false
		for _, p := range verr.Problems {
			found = found || p.Path == tc.path && strings.Contains(p.Message, tc.says)
		}
		if !found {
			t.Errorf("no problem at %q saying %q in %v", tc.path, tc.says, verr.Problems)
		}
	}
}
