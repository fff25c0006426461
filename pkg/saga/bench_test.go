package saga_test

import (
	"fmt"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
)

// runToEnd drives a saga of n targets to success, answering every command.
func runToEnd(b *testing.B, n, batch int) int {
	targets := make([]string, n)
	for i := range targets {
		targets[i] = fmt.Sprintf("t%d", i)
	}
	s, eff := saga.Apply(saga.New("s", request(spec.KindUpgrade, batch, targets...), saga.Options{}, t0), saga.Input{Kind: saga.InputStart, At: t0})
	inputs := 1
	for len(eff.Commands) > 0 {
		cmds := eff.Commands
		eff = saga.Effects{}
		for _, c := range cmds {
			var e saga.Effects
			s, e = saga.Apply(s, saga.Input{Kind: saga.InputReport, At: t0, Result: result(c, events.StatusSucceeded)})
			inputs++
			eff.Commands = append(eff.Commands, e.Commands...)
		}
	}
	if s.State != saga.StateSucceeded {
		b.Fatalf("ended %s", s.State)
	}
	return inputs
}

// BenchmarkWholeSaga is the machine's cost for a whole saga, every
// transition of it; the coordinator adds the store and NATS to each. The
// fleet sizes, in batches of 5%, show what a transition costs as a saga
// grows: it should not grow with the targets of the batches done.
func BenchmarkWholeSaga(b *testing.B) {
	for _, size := range []struct{ targets, batch int }{{1, 1}, {10, 2}, {100, 10}, {1000, 50}, {10000, 500}} {
		b.Run(fmt.Sprintf("targets=%d", size.targets), func(b *testing.B) {
			inputs := 0
			for b.Loop() {
				inputs = runToEnd(b, size.targets, size.batch)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*inputs), "ns/transition")
		})
	}
}
