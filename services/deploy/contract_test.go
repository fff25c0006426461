package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase/phasetest"
	"github.com/upshift/upshift/services/deploy"
)

func TestExecutorContract(t *testing.T) {
	phasetest.Run(t, func(t *testing.T) phasetest.Target {
		h := newHost(t, 0)
		h.installed("1.0")
		url, digest := h.pack("app-1.1", release("1.1"))
		return phasetest.Target{Executor: h.exec,
			Commands: []events.Command{command(events.ActionApply, "1.0", "1.1", url, digest), command(events.ActionRollback, "1.0", "1.1", "", "")},
			// The release in service, those installed, and whether one is
			// left stopped.
			State: func(t *testing.T) string {
				_, err := os.Stat(filepath.Join(h.root, deploy.StoppedFile))
				return fmt.Sprintf("current %s, releases %v, stopped mark %v", h.current(), h.releases(), err == nil)
			}}
	})
}
