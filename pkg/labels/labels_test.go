package labels_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/labels"
)

func TestSelectorsMatchByEveryRequirement(t *testing.T) {
	web := map[string]string{"role": "web", "zone": "dmz"}
	lan := map[string]string{"role": "web", "zone": "lan"}
	bare := map[string]string{}
	for _, tc := range []struct {
		sel  string
		want []bool // web, lan, bare
	}{
		{"role=web", []bool{true, true, false}},
		{"role=web,zone=dmz", []bool{true, false, false}},
		{" role = web , zone != dmz ", []bool{false, true, false}},
		{"zone!=dmz", []bool{false, true, true}},
		{"role=", []bool{false, false, false}},
		{"team.example/tier=1", []bool{false, false, false}},
	} {
		sel, err := labels.ParseSelector(tc.sel)
		if err != nil {
			t.Fatalf("%q: %v", tc.sel, err)
		}
		for i, labels := range []map[string]string{web, lan, bare} {
			if got := sel.Matches(labels); got != tc.want[i] {
				t.Errorf("%q on %v: %v, want %v", tc.sel, labels, got, tc.want[i])
			}
		}
	}
}

func TestBadSelectorsNameEveryProblem(t *testing.T) {
	for _, tc := range []struct {
		sel  string
		want []string
	}{
		{"", []string{"empty"}},
		{"role", []string{`term 1 "role": want key=value or key!=value`}},
		{"Role=web,zone=d mz", []string{`key "Role"`, `value "d mz"`}},
		{"role==web", []string{`value "=web"`}},
		{"role=web,,zone=dmz", []string{`term 2 ""`}},
	} {
		_, err := labels.ParseSelector(tc.sel)
		if !errors.Is(err, labels.ErrSelector) {
			t.Fatalf("%q: %v, want ErrSelector", tc.sel, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: %v, want it to say %s", tc.sel, err, w)
			}
		}
	}
}

func TestCheckLabels(t *testing.T) {
	if p := labels.CheckLabels(map[string]string{"role": "web", "example.com/tier": "1", "empty": ""}); p != nil {
		t.Fatalf("good labels: %v", p)
	}
	p := labels.CheckLabels(map[string]string{"Role": "web", "zone": "a b"})
	if len(p) != 2 || !strings.Contains(p[0], `"Role"`) || !strings.Contains(p[1], `zone="a b"`) {
		t.Fatalf("problems %q", p)
	}
}
