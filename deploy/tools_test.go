package deploy_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// tool finds a command the deployment tests need; they fail, never skip,
// without it.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: apt-get install %s (.ci/run installs it when missing)", name, pkg)
	}
	return path
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPrometheusRulesAndConfigPassPromtool(t *testing.T) {
	t.Parallel()
	promtool := tool(t, "promtool", "prometheus")
	rules, err := os.ReadFile("prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	out := run(t, promtool, "check", "rules", "prometheus/rules.yml")
	if n := strings.Count(string(rules), "- alert:"); n == 0 || !strings.Contains(out, fmt.Sprintf("SUCCESS: %d rules found", n)) {
		t.Fatalf("promtool check rules: %s", out)
	}
	run(t, promtool, "check", "config", "--syntax-only", "prometheus/prometheus.yml")
}
