package saga_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The functional core and the event contract it speaks stay pure: no
// package they depend on talks to NATS, PostgreSQL or HTTP, or is a
// service. A test of a transition then needs nothing running.
func TestTheCoreImportsNoIO(t *testing.T) {
	core := []string{"pkg/saga", "pkg/spec", "pkg/window", "pkg/events"}
	forbidden := []string{
		"github.com/nats-io/", "github.com/jackc/", "net/http", "database/sql", "os/exec",
		"github.com/prometheus/", "github.com/upshift/upshift/services/", "github.com/upshift/upshift/cmd/",
		// The project's own packages that do I/O.
		"github.com/upshift/upshift/pkg/bus", "github.com/upshift/upshift/pkg/consumer",
		"github.com/upshift/upshift/pkg/streams", "github.com/upshift/upshift/pkg/natstest",
		"github.com/upshift/upshift/pkg/natsembed", "github.com/upshift/upshift/pkg/pgtest",
		"github.com/upshift/upshift/pkg/phase", "github.com/upshift/upshift/pkg/hooks",
		"github.com/upshift/upshift/pkg/artifact", "github.com/upshift/upshift/pkg/targets",
	}
	bad := func(imp string) bool {
		for _, f := range forbidden {
			if imp == f || strings.HasPrefix(imp, f+"/") || strings.HasSuffix(f, "/") && strings.HasPrefix(imp, f) {
				return true
			}
		}
		return false
	}
	for _, pkg := range core {
		// Each dependency with what it imports, to name the importer.
		cmd := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "github.com/upshift/upshift/"+pkg)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			fields := strings.Fields(line)
			if bad(fields[0]) {
				continue // named where it is imported from the allowed side
			}
			for _, imp := range fields[1:] {
				if bad(imp) {
					t.Errorf("%s depends on %s, imported by %s", pkg, imp, fields[0])
				}
			}
		}
	}
}
