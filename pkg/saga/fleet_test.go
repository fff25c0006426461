package saga_test

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
)

// fleetTargets is how many targets the fleet tests run: 2,000 by default,
// UPSHIFT_FLEET_TARGETS for more (10000 is the fleet the machine is sized
// for; it takes a few seconds, a minute under -race).
func fleetTargets(t *testing.T) int {
	n := 2000
	if v := os.Getenv("UPSHIFT_FLEET_TARGETS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 100 {
			t.Fatalf("UPSHIFT_FLEET_TARGETS=%q: want a number of at least 100", v)
		}
	}
	return n
}

// fleet drives a saga of n targets in batches of 5%, 2% of a batch
// tolerated, to its end: every command answered once, in the order sent,
// as fails says.
type fleet struct {
	s    saga.Saga
	sent map[string]int // commands sent, by phase/action/target
	ids  map[string]bool
	cmds int
}

func runFleet(t *testing.T, n int, fails func(events.Command) bool) *fleet {
	targets := make([]string, n)
	for i := range targets {
		targets[i] = fmt.Sprintf("host-%05d", i)
	}
	r := request(spec.KindUpgrade, 0, targets...)
	r.Spec.Rollout = spec.Rollout{BatchPercent: 5, MaxFailedPercent: 2}
	r = r.WithDefaults()
	if err := r.Validate(); !onlyTooMany(err) {
		t.Fatalf("request: %v", err)
	}
	f := &fleet{sent: map[string]int{}, ids: map[string]bool{}}
	s, eff := saga.Apply(saga.New("fleet", r, saga.Options{}, t0), saga.Input{Kind: saga.InputStart, At: t0})
	queue := eff.Commands
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		f.cmds++
		if f.ids[c.Step] {
			t.Fatalf("command %s sent twice", c.Step)
		}
		f.ids[c.Step] = true
		f.sent[fmt.Sprintf("%s/%s/%s", c.Phase, c.Action, c.Target)]++
		status := events.StatusSucceeded
		if fails(c) {
			status = events.StatusFailed
		}
		var e saga.Effects
		s, e = saga.Apply(s, saga.Input{Kind: saga.InputReport, At: t0, Result: result(c, status)})
		if e.Ignored != "" {
			t.Fatalf("report of %s ignored: %s", c.Step, e.Ignored)
		}
		queue = append(queue, e.Commands...)
	}
	f.s = s
	return f
}

// onlyTooMany: the limit on targets is the stores' (a saga document
// whole in one message), not the machine's; the rest of the request must
// be right.
func onlyTooMany(err error) bool {
	var v *spec.ValidationError
	if err == nil {
		return true
	}
	if !errors.As(err, &v) {
		return false
	}
	for _, p := range v.Problems {
		if p.Path != "spec.targets" {
			return false
		}
	}
	return true
}

func (f *fleet) count(p events.Phase, a events.Action, target string) int {
	return f.sent[fmt.Sprintf("%s/%s/%s", p, a, target)]
}

// A fleet upgrade whose fourth batch fails beyond its tolerance rolls back
// the four batches it deployed, and only those: each deploy undone once
// (the targets set aside, alone, and not again), each of their backups
// restored once, the batches after never touched; and no command was sent
// twice.
func TestAFleetRollsBackTheBatchesItDeployed(t *testing.T) {
	t.Parallel()
	n := fleetTargets(t)
	size := spec.PercentSize(n, 5)
	tolerated := size * 2 / 100
	failing := map[string]bool{}
	alone := fmt.Sprintf("host-%05d", size+7) // batch 2: one deploy fails, within the tolerance
	failing["deploy/"+alone] = true
	for i := range tolerated + 1 { // batch 4: more verifications fail than tolerated
		failing[fmt.Sprintf("verify/host-%05d", 3*size+i)] = true
	}
	f := runFleet(t, n, func(c events.Command) bool {
		return c.Compensates == "" && failing[string(c.Phase)+"/"+c.Target]
	})
	if f.s.State != saga.StateRolledBack {
		t.Fatalf("ended %s (%s), want rolled back", f.s.State, f.s.Reason)
	}
	// Batch 4's failures are heard one at a time: the first it tolerates
	// are set aside as they come, the one more rolls everything back.
	aside := []string{alone}
	for i := range tolerated {
		aside = append(aside, fmt.Sprintf("host-%05d", 3*size+i))
	}
	if !slices.Equal(f.s.SetAside, aside) {
		t.Fatalf("set aside %v, want %v", f.s.SetAside, aside)
	}
	for i := range n {
		tg := fmt.Sprintf("host-%05d", i)
		deployed := i < 4*size
		want := map[string]int{
			"precheck check": 1, "backup archive": 1,
			"deploy apply": b2i(deployed), "deploy rollback": b2i(deployed),
			"backup restore": b2i(deployed),
			"verify probe":   b2i(deployed && tg != alone),
		}
		got := map[string]int{
			"precheck check": f.count(events.Precheck, events.ActionCheck, tg), "backup archive": f.count(events.Backup, events.ActionArchive, tg),
			"deploy apply": f.count(events.Deploy, events.ActionApply, tg), "deploy rollback": f.count(events.Deploy, events.ActionRollback, tg),
			"backup restore": f.count(events.Backup, events.ActionRestore, tg), "verify probe": f.count(events.Verify, events.ActionProbe, tg),
		}
		for k, w := range want {
			if got[k] != w {
				t.Fatalf("%s: %s sent %d times, want %d", tg, k, got[k], w)
			}
		}
	}
	if len(f.s.Steps) != f.cmds {
		t.Fatalf("%d steps for %d commands", len(f.s.Steps), f.cmds)
	}
	t.Logf("%d targets in batches of %d: %d commands", n, size, f.cmds)
}

// A fleet upgrade whose failures stay within each batch's tolerance
// succeeds, the failed targets rolled back alone and named.
func TestAFleetSucceedsWithFailuresItTolerates(t *testing.T) {
	t.Parallel()
	n := fleetTargets(t)
	size := spec.PercentSize(n, 5)
	var bad []string
	for b := 0; b*size < n; b += 3 { // one target of every third batch
		bad = append(bad, fmt.Sprintf("host-%05d", b*size+b%size))
	}
	f := runFleet(t, n, func(c events.Command) bool {
		return c.Phase == events.Verify && c.Compensates == "" && slices.Contains(bad, c.Target)
	})
	if f.s.State != saga.StateSucceeded || !slices.Equal(f.s.SetAside, bad) {
		t.Fatalf("ended %s with %v set aside (%s), want succeeded with %v", f.s.State, f.s.SetAside, f.s.Reason, bad)
	}
	for i := range n {
		tg := fmt.Sprintf("host-%05d", i)
		if got := f.count(events.Deploy, events.ActionApply, tg); got != 1 {
			t.Fatalf("%s deployed %d times", tg, got)
		}
		if got, want := f.count(events.Deploy, events.ActionRollback, tg), b2i(slices.Contains(bad, tg)); got != want {
			t.Fatalf("%s rolled back %d times, want %d", tg, got, want)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A fleet's events name its first events.MaxNamedTargets targets and say
// how many there are, so that an event does not grow with the fleet; a
// saga of fewer names them all.
func TestAFleetsEventsNameTheFirstTargets(t *testing.T) {
	t.Parallel()
	for _, n := range []int{3, events.MaxNamedTargets, events.MaxNamedTargets + 1, 2000} {
		targets := make([]string, n)
		for i := range targets {
			targets[i] = fmt.Sprintf("host-%05d", i)
		}
		_, eff := saga.Apply(saga.New("s", request(spec.KindUpgrade, 10, targets...), saga.Options{}, t0), saga.Input{Kind: saga.InputStart, At: t0})
		wantNamed, wantCount := n, 0
		if n > events.MaxNamedTargets {
			wantNamed, wantCount = events.MaxNamedTargets, n
		}
		for _, e := range eff.Events {
			if len(e.Targets) != wantNamed || e.TargetCount != wantCount || e.Targets[0] != "host-00000" {
				t.Fatalf("%d targets: %s event names %d, count %d; want %d, %d", n, e.Kind, len(e.Targets), e.TargetCount, wantNamed, wantCount)
			}
		}
	}
}
