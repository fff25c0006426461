package phase_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/pkg/testlog"
)

// Every way a secret can reach a log line: the message, a string, an
// error, a map, a group, and attributes added with With.
func TestScrubLogsRedactsEveryAttribute(t *testing.T) {
	t.Parallel()
	const secret = "pg-s3cret-pw"
	reg, err := targets.New(map[string]targets.Target{"db": {Root: "/srv/db", Env: map[string]targets.Secret{"PGPASSWORD": secret}}}, "/")
	if err != nil {
		t.Fatal(err)
	}
	var out testlog.Buffer
	log := slog.New(phase.ScrubLogs(slog.NewJSONHandler(&out, nil), reg.Scrub)).With("dsn", "postgres://u:"+secret+"@db")
	log.Info("connecting with "+secret, "err", errors.New("auth failed for "+secret),
		"output", map[string]string{"stdout": "pw=" + secret}, slog.Group("g", "k", secret), "n", 3)
	line := out.String()
	if strings.Contains(line, secret) || strings.Count(line, targets.Redacted) != 5 || !strings.Contains(line, `"n":3`) {
		t.Fatalf("log line %s", line)
	}
}
