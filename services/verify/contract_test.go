package verify_test

import (
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase/phasetest"
)

func TestExecutorContract(t *testing.T) {
	phasetest.Run(t, func(t *testing.T) phasetest.Target {
		a := newApp(t, "", "1.1", 200)
		return phasetest.Target{Executor: executor(t, a.health(3, 3)), Commands: []events.Command{probeCmd("1.0", "1.1")}}
	})
}
