package notify_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/services/notify"
)

// A fleet's notice names the targets its event names, the first
// events.MaxNamedTargets, and says how many more there are.
func TestAFleetsNoticeSaysHowManyTargetsItDoesNotName(t *testing.T) {
	t.Parallel()
	named := make([]string, events.MaxNamedTargets)
	for i := range named {
		named[i] = fmt.Sprintf("host-%04d", i)
	}
	ev := events.SagaEvent{Saga: "s1", Kind: "succeeded", State: "succeeded", Team: "ops", Software: "agent",
		From: "1.0", To: "1.1", Targets: named, TargetCount: 2000}
	m := notify.Compose(events.Notice{Team: "ops", Saga: "s1", Kind: "succeeded", Targets: named, Event: ev})
	if !strings.HasPrefix(m.Targets, "host-0000, host-0001,") || !strings.HasSuffix(m.Targets, "host-0049 and 1950 more") {
		t.Fatalf("targets %q", m.Targets)
	}
	ev.Targets, ev.TargetCount = named[:3], 0
	if m := notify.Compose(events.Notice{Team: "ops", Saga: "s1", Kind: "succeeded", Targets: named[:3], Event: ev}); m.Targets != "host-0000, host-0001, host-0002" {
		t.Fatalf("targets %q", m.Targets)
	}
}
