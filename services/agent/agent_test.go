package agent_test

import (
	"flag"
	"strings"
	"testing"

	"github.com/upshift/upshift/services/agent"
)

// A flag several phases have is given once and reaches each of them; a
// phase's own reaches it; a password prints masked.
func TestFlagsReachEveryPhase(t *testing.T) {
	t.Parallel()
	s := &agent.Settings{}
	fs := flag.NewFlagSet("upshift-agent", flag.ContinueOnError)
	agent.Program(s).Flags(fs)
	if err := fs.Parse([]string{"--targets", "/etc/t.yaml", "--artifact-dir", "/var/a", "--ack-wait", "7s",
		"--backup-keep", "2", "--nats-user-prefix", "web1", "--deploy-nats-password", "hunter2"}); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]string{"precheck": s.Precheck.TargetsFile, "backup": s.Backup.TargetsFile,
		"deploy": s.Deploy.TargetsFile, "verify": s.Verify.TargetsFile} {
		if got != "/etc/t.yaml" {
			t.Errorf("%s targets %q", name, got)
		}
	}
	if s.Precheck.Artifacts.Dir != "/var/a" || s.Deploy.Artifacts.Dir != "/var/a" {
		t.Errorf("artifact dirs %q %q", s.Precheck.Artifacts.Dir, s.Deploy.Artifacts.Dir)
	}
	if s.Verify.Consumer.AckWait.String() != "7s" || s.Backup.Consumer.AckWait.String() != "7s" {
		t.Errorf("ack wait %v %v", s.Verify.Consumer.AckWait, s.Backup.Consumer.AckWait)
	}
	if s.Backup.Keep != 2 || s.UserPrefix != "web1" || string(*s.Passwords["deploy"]) != "hunter2" {
		t.Errorf("keep %d prefix %q", s.Backup.Keep, s.UserPrefix)
	}
	var shown strings.Builder
	fs.VisitAll(func(f *flag.Flag) { shown.WriteString(f.Name + "=" + f.Value.String() + "\n") })
	if strings.Contains(shown.String(), "hunter2") {
		t.Errorf("a password shows:\n%s", shown.String())
	}
}
