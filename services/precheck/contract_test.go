package precheck_test

import (
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase/phasetest"
)

func TestExecutorContract(t *testing.T) {
	phasetest.Run(t, func(t *testing.T) phasetest.Target {
		e, url, digest := host(t, "1MiB")
		return phasetest.Target{Executor: e, Commands: []events.Command{command(url, digest, "1.0")}}
	})
}
