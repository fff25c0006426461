package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator"
)

// A user renders the plan of a request with a dry run's measurements, runs
// it, and reads its report, through the command line alone.
func TestPlanWithADryRunThenTheReport(t *testing.T) {
	endToEnd(t)
	bin := binaries(t)
	r := newRigWith(t, "1.0", coordinator.Policy{})
	b, err := yaml.Marshal(r.d.Request("1.0", "1.1"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "request.yaml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	upshift := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(bin, "upshift"), append(args, "--nats", r.s.URL())...).Output()
		if err != nil {
			t.Fatalf("upshift %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	plan := upshift("plan", "-f", file, "--dry-run", "--lang", "zh")
	for _, want := range []string{"#### 3.2.2 升级环境检查", "试运行", "| 目标 | 检查项 | 阈值 | 实测值 | 结果 |", "| demo | free disk |"} {
		if !strings.Contains(plan, want) {
			t.Fatalf("the plan lacks %q:\n%s", want, plan)
		}
	}
	id, end := r.run(r.d.Request("1.0", "1.1"))
	if end.Kind != string(saga.StateSucceeded) {
		t.Fatalf("saga %s ended %s: %s", id, end.Kind, end.Reason)
	}
	report := upshift("report", id, "--format", "html")
	for _, want := range []string{"<h2>4 Backups</h2>", "<td>demo</td><td>succeeded</td>", "State: succeeded", "<td>succeeded</td>"} {
		if !strings.Contains(report, want) {
			t.Fatalf("the report lacks %q:\n%s", want, report)
		}
	}
}
