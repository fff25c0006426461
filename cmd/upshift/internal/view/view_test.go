package view_test

import (
	"strings"
	"testing"

	"github.com/upshift/upshift/cmd/upshift/internal/view"
	"github.com/upshift/upshift/pkg/events"
)

// A failed step's line names its reason once, whether or not the service
// repeated the reason at the start of its error.
func TestAFailedStepSaysItsReasonOnce(t *testing.T) {
	for _, r := range []events.StepResult{
		{Phase: events.Deploy, Action: events.ActionApply, Target: "web", Status: events.StatusFailed,
			Reason: "start_failed", Error: "start_failed: hook failed: exit status 1"},
		{Phase: events.Deploy, Action: events.ActionApply, Target: "web", Status: events.StatusFailed,
			Reason: "start_failed", Error: "hook failed: exit status 1"},
	} {
		line := view.StepLine(r)
		if n := strings.Count(line, "start_failed"); n != 1 || !strings.HasSuffix(line, "start_failed: hook failed: exit status 1") {
			t.Errorf("%q: the reason %d times", line, n)
		}
	}
}
