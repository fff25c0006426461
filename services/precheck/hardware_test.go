package precheck_test

import (
	"testing"

	"github.com/upshift/upshift/pkg/events"
)

func TestHardwareChecks(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, settings, line string
		status               events.CheckStatus
		says                 string
	}{
		{"disk enough", `{"minFreeDisk": "1MiB", "minFreeDiskPercent": 0.001}`, "free disk", events.CheckPass, "%) free"},
		{"disk too small", `{"minFreeDisk": "1000TiB"}`, "free disk", events.CheckFail, "need 1000.0TiB"},
		{"disk share too small", `{"minFreeDisk": "1MiB", "minFreeDiskPercent": 100}`, "free disk", events.CheckFail, "need 100%"},
		{"memory enough", `{"minMemory": "1MiB"}`, "memory", events.CheckPass, "available of"},
		{"memory too small", `{"minMemory": "1000TiB"}`, "memory", events.CheckFail, "need 1000.0TiB"},
		{"cpus enough", `{"minCPUs": 1}`, "cpus", events.CheckPass, ""},
		{"too few cpus", `{"minCPUs": 100000}`, "cpus", events.CheckFail, "need 100000"},
		{"load low enough", `{"maxLoadPerCPU": 1000}`, "load", events.CheckPass, "per CPU"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out := checked(t, c.settings)
			l := expect(t, out, c.line, c.status, c.says)
			if l.Value == "" || l.Threshold == "" {
				t.Fatalf("line without value or threshold: %+v", l)
			}
		})
	}
}

// Unconfigured hardware is not checked, but free disk always is.
func TestOnlyFreeDiskByDefault(t *testing.T) {
	t.Parallel()
	out := checked(t, `{}`)
	if got := lines(out.Report); got != "free disk=ok, installed version=ok" {
		t.Fatalf("report %s", got)
	}
	if l := line(t, out, "free disk"); l.Threshold != ">= 100.0MiB" {
		t.Fatalf("default threshold %q", l.Threshold)
	}
}
