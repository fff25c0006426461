package verify_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase/phasetest"
)

func TestExecutorContract(t *testing.T) {
	phasetest.Run(t, func(t *testing.T) phasetest.Target {
		a := newApp(t, "", "1.1", 200)
		return phasetest.Target{Executor: executor(t, a.health(3, 3)), Commands: []events.Command{probeCmd("1.0", "1.1")}}
	})
}

// With analyses, and a watch after the probe.
func TestExecutorContractWithAnalysesAndAWatch(t *testing.T) {
	phasetest.Run(t, func(t *testing.T) phasetest.Target {
		w := watchCmd(300 * time.Millisecond)
		return phasetest.Target{Executor: watchExecutor(t, []int{http.StatusOK}, "healthy"),
			Commands: []events.Command{probeCmd("4.1", "4.2"), w}}
	})
}
