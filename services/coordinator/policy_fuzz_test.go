package coordinator_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/upshift/upshift/services/coordinator"
)

// Whatever the policy file says, loading it never panics, and a policy
// that loads passes its own check.
func FuzzLoadPolicy(f *testing.F) {
	if b, err := os.ReadFile("../../examples/policy.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("environments: {production: {approval: true, windows: [{days: [sat], start: \"02:00\", end: \"04:00\"}]}}\n"))
	f.Add([]byte("environments: {prod: {rehearsal: {environment: test, within: 72h}}}\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := coordinator.LoadPolicy(path)
		if err != nil {
			return
		}
		if err := p.Check(); err != nil {
			t.Fatalf("loaded but fails its check: %v", err)
		}
	})
}
