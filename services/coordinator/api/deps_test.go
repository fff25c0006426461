package api_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The CLI and the HTTP API import this package to talk to a coordinator;
// it must not bring the coordinator's engine, its stores or their drivers
// with it.
func TestImportsNoEngineNorStore(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list this package's imports: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []struct{ path, why string }{
		{"github.com/upshift/upshift/services/coordinator", "the engine"},
		{"github.com/upshift/upshift/services/coordinator/sagastore/kvstore", "a store"},
		{"github.com/upshift/upshift/services/coordinator/sagastore/pgstore", "a store"},
		{"github.com/jackc/pgx/", "PostgreSQL's driver"},
		{"github.com/pressly/goose/", "migrations"},
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps listed nothing")
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if dep == f.path || strings.HasSuffix(f.path, "/") && strings.HasPrefix(dep, f.path) {
				t.Errorf("imports %s (%s)", dep, f.why)
			}
		}
	}
}
