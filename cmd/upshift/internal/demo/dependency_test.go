package demo_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upshift/upshift/cmd/upshift/internal/demo"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/precheck"
)

// The demo's precheck checks a representative set, and it passes here, as
// it must wherever the demo runs; once its dependency stops, it fails.
func TestDemoPrecheckPasses(t *testing.T) {
	dep, err := demo.StartDependency()
	if err != nil {
		t.Fatal(err)
	}
	defer dep.Close()
	tgt, err := demo.SetupTarget(filepath.Join(t.TempDir(), "target"), 18124)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := targets.New(map[string]targets.Target{"demo": demo.WithDependency(tgt, dep)}, "/")
	if err != nil {
		t.Fatal(err)
	}
	e := &precheck.Executor{Targets: reg}
	cmd := events.Command{Step: "s.precheck.check.demo.1", Saga: "s", Phase: events.Precheck, Action: events.ActionCheck,
		Target: "demo", Attempt: 1, Upgrade: events.Upgrade{Kind: "Upgrade", Software: "demo-app", To: "1.1"}}
	out, err := e.Execute(context.Background(), cmd, func(string) {})
	if err != nil || out.Failed {
		t.Fatalf("precheck failed: %v %s %+v", err, out.Error, out.Report)
	}
	var names []string
	for _, l := range out.Report {
		names = append(names, l.Name)
	}
	if got := strings.Join(names, ", "); got != "free disk, memory, cpus, os, tcp inventory-api, dependency inventory-api" {
		t.Fatalf("checks %s", got)
	}

	dep.Close()
	out, _ = e.Execute(context.Background(), cmd, func(string) {})
	if !out.Failed || !strings.Contains(out.Error, "2 checks failed: tcp inventory-api: ") || !strings.Contains(out.Error, "dependency inventory-api: ") {
		t.Fatalf("with the dependency down: %s", out.Error)
	}
}
