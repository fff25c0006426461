package precheck_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/precheck"
)

// checked runs the precheck of a target, with 1.0 installed, configured with
// precheck (a targets.Precheck or its JSON), and returns its outcome.
func checked(t *testing.T, settings any) phase.Outcome {
	t.Helper()
	return checkedWith(t, nil, settings)
}

// checkedWith is checked for a target that declares databases.
func checkedWith(t *testing.T, dbs []targets.Database, settings any) phase.Outcome {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "web-1")
	os.MkdirAll(filepath.Join(root, "releases", "1.0"), 0o755)
	os.Symlink(filepath.Join(root, "releases", "1.0"), filepath.Join(root, "current"))
	b, err := json.Marshal(settings)
	if s, ok := settings.(string); ok {
		b = []byte(s)
	}
	if err != nil {
		t.Fatal(err)
	}
	d, err := json.Marshal(dbs)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := targets.Parse([]byte(`{"targets": {"web-1": {"root": "`+root+`", "databases": `+string(d)+`, "precheck": `+string(b)+`}}}`), dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &precheck.Executor{Targets: reg}
	out, err := e.Execute(context.Background(), command("", "", "1.0"), func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// line is the report's line named name.
func line(t *testing.T, out phase.Outcome, name string) events.ReportLine {
	t.Helper()
	for _, l := range out.Report {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("no line %q in %s", name, lines(out.Report))
	return events.ReportLine{}
}

// expect checks a line's status and that its detail (or, passing, its
// value) says what it should, and that a failure is in the step's error.
func expect(t *testing.T, out phase.Outcome, name string, status events.CheckStatus, says string) events.ReportLine {
	t.Helper()
	l := line(t, out, name)
	if l.LineStatus() != status || l.OK != (status != events.CheckFail) {
		t.Fatalf("%s: %s (ok %v), want %s: %+v", name, l.LineStatus(), l.OK, status, l)
	}
	if !strings.Contains(l.Detail+" "+l.Value, says) {
		t.Fatalf("%s: %q / %q does not say %q", name, l.Value, l.Detail, says)
	}
	if l.Duration <= 0 {
		t.Errorf("%s: no duration", name)
	}
	failed := status == events.CheckFail
	if failed != out.Failed || failed != strings.Contains(out.Error, name+":") {
		t.Fatalf("%s %s; step failed %v: %q", name, status, out.Failed, out.Error)
	}
	return l
}
