package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// The plan needs no server without --dry-run: the examples render, with
// the targets' checks and the environment's policy.
func TestPlanOfTheExamples(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := run(context.Background(), []string{"plan", "-f", "../../examples/upgrade.yaml", "--targets", "../../examples/targets.yaml",
		"--policy", "../../examples/policy.yaml", "--lang", "zh", "--nats", "nats://127.0.0.1:1"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# billing V4.2 维护与升级实施方案", "#### 3.2.2 升级环境检查", "| 编制人 | Li Lei |", "变更单 CAB-1234"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the plan lacks %q:\n%s", want, out.String())
		}
	}
	for _, args := range [][]string{
		{"plan", "-f", "../../examples/upgrade.yaml", "--lang", "fr"},
		{"plan", "-f", "../../examples/upgrade.yaml", "--format", "pdf"},
		{"report", "some-id", "--format", "pdf", "--nats", "nats://127.0.0.1:1"},
	} {
		if err := run(context.Background(), args, &bytes.Buffer{}); !errors.Is(err, exitInvalid) {
			t.Errorf("%v: err %v, want exit 2", args, err)
		}
	}
}
