package spec_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/upshift/upshift/pkg/spec"
)

// problemsAt parses src and returns each problem's "line:column path".
func problemsAt(t *testing.T, src string) map[string]string {
	t.Helper()
	_, err := spec.Parse([]byte(src))
	var verr *spec.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err %v", err)
	}
	got := map[string]string{}
	for _, p := range verr.Problems {
		got[p.Path] = fmtPos(p)
	}
	return got
}

func fmtPos(p spec.Problem) string {
	if p.Line == 0 {
		return "-"
	}
	return fmt.Sprintf("%d:%d", p.Line, p.Column)
}

// Every problem of a request file is listed with where its field is: the
// key of a map entry, the item of a list, the mapping a missing field
// belongs in; in YAML and in JSON alike.
func TestProblemsPointAtTheirField(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      map[string]string
	}{
		{"yaml", `apiVersion: upshift/v1
kind: Upgrade
metadata:
  team: ops
  environment: production
spec:
  software: billing
  from: "1.0"
  to: "1.1"
  tagets: [a]
  targets:
    - web-1
    - 7
  notify: {qa: yes}
  artifact:
    url: https://example.com/b.tgz
`, map[string]string{
			"spec.tagets":     "10:3",
			"spec.targets[1]": "13:7",
			"spec.notify":     "14:3",
			// missing: where its mapping is
			"spec.artifact.digest": "15:3",
		}},
		{"json", `{"apiVersion": "upshift/v1", "kind": "Upgrade",
 "metadata": {"team": "ops"},
 "spec": {"software": "x", "from": "1", "to": "2", "targets": ["a", 7],
          "artifact": {"url": "https://example.com/b.tgz", "digest": 5}}}
`, map[string]string{
			"metadata.environment": "2:2",
			"spec.targets[1]":      "3:69",
			"spec.artifact.digest": "4:60",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := problemsAt(t, tc.src)
			for path, pos := range tc.want {
				if got[path] != pos {
					t.Errorf("%s at %q, want %s (all: %v)", path, got[path], pos, got)
				}
			}
		})
	}
}
