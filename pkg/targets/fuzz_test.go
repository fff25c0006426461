package targets_test

import (
	"os"
	"testing"

	"github.com/upshift/upshift/pkg/targets"
)

// Whatever an operator writes, loading it never panics, and a file that
// loads names only targets the registry then serves.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../examples/targets.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("targets: {web-1: {root: /srv/web}}\n"))
	f.Add([]byte("defaults: {precheck: {minFreeDisk: 1GiB}}\ntargets: {a: {root: x, keep: -1}}\n"))
	f.Add([]byte("targets: [\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		reg, err := targets.Parse(b, "/base")
		if err != nil {
			return
		}
		for _, name := range reg.Names() {
			tg, err := reg.Get(name)
			if err != nil || tg.Name != name {
				t.Fatalf("%q listed but %v", name, err)
			}
			_ = tg.Scrub("text with secrets") // must not panic
		}
	})
}
