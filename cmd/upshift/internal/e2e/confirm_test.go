package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/services/coordinator"
)

// What a new user does with the README alone, through the command line:
// write a request that asks two roles to confirm, an approval and an
// announcement; render its plan with a dry run; submit it; confirm it for
// both roles; approve it; watch it to the end; read its report, which
// names who confirmed.
func TestANewUserConfirmsApprovesAndReadsTheReport(t *testing.T) {
	endToEnd(t)
	bin := binaries(t)
	r := newRigWith(t, "1.0", coordinator.Policy{})
	req := r.d.Request("1.0", "1.1")
	req.Spec.Approval.Required = true
	req.Spec.Confirm = &spec.Confirm{Roles: []string{"dev", "dba"}}
	req.Spec.Announce = &spec.Announce{Teams: []string{"sales"}}
	b, err := yaml.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "request.yaml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		out, err := exec.Command(filepath.Join(bin, "upshift"), append(args, "--nats", r.s.URL())...).CombinedOutput()
		return string(out), err
	}
	upshift := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("upshift %v: %v\n%s", args, err, out)
		}
		return out
	}

	if plan := upshift("plan", "-f", file, "--dry-run"); !strings.Contains(plan, "| demo | free disk |") {
		t.Fatalf("the plan lacks the dry run's measurements:\n%s", plan)
	}
	m := regexp.MustCompile(`submitted (\S+):`).FindStringSubmatch(upshift("submit", "-f", file))
	if m == nil {
		t.Fatal("submit printed no saga id")
	}
	id := m[1]
	r.reach(id, saga.StateAwaitingConfirmation)
	if st := upshift("status", id); !strings.Contains(st, "confirmed dba") || !strings.Contains(st, "not yet (upshift confirm "+id+" --role dba)") {
		t.Fatalf("status does not say who must confirm:\n%s", st)
	}
	upshift("confirm", id, "--role", "dba", "--by", "dora", "--comment", "on call")
	if out, err := run("confirm", id, "--role", "qa", "--by", "quinn"); err == nil || !strings.Contains(out, `role "qa": saga `+id+" asks dev, dba to confirm") {
		t.Fatalf("confirm of a role not asked: %v\n%s", err, out)
	}
	upshift("confirm", id, "--role", "dev", "--by", "dev-1")
	r.reach(id, saga.StateAwaitingApproval)
	upshift("approve", id, "--by", "alice", "--comment", "CAB-7")

	if progress := upshift("watch", id); !strings.Contains(progress, "awaiting confirmation") || !strings.Contains(progress, "=> SUCCEEDED") {
		t.Fatalf("watch's progress:\n%s", progress)
	}
	watched := upshift("watch", "--events", id)
	for _, want := range []string{"announced to sales", "dba confirmed by dora: on call", "dev confirmed by dev-1 (every role confirmed)", "approved by alice", "succeeded"} {
		if !strings.Contains(watched, want) {
			t.Fatalf("watch lacks %q:\n%s", want, watched)
		}
	}
	report := upshift("report", id)
	for _, want := range []string{"| Confirmed by (dev) | dev-1 at ", "| Confirmed by (dba) | dora at ", ": on call |", "| Approved by | alice at "} {
		if !strings.Contains(report, want) {
			t.Fatalf("the report lacks %q:\n%s", want, report)
		}
	}
}
