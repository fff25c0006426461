package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/services/coordinator/api"
)

// agent starts the four phase services of one target, as an upshift-agent
// runs them, announcing its labels and version 1.0; exec, if set, executes
// instead of the world's scripted executor. stop stops them gracefully.
func (w *world) agent(target string, labels map[string]string, exec phase.ExecutorFunc) (stop func()) {
	if exec == nil {
		exec = w.execute
	}
	actions := map[events.Phase][]events.Action{
		events.Precheck: {events.ActionCheck}, events.Backup: {events.ActionArchive, events.ActionRestore},
		events.Deploy: {events.ActionApply, events.ActionRollback}, events.Verify: {events.ActionProbe},
	}
	var stops []func()
	for _, p := range events.Phases {
		svc := phase.New(w.js, phase.Config{Service: p, Instance: "agent@" + target + "/" + string(p), Host: target,
			Targets: []string{target}, Actions: actions[p], Consumer: fast,
			Describe: func(string) (map[string]string, string) { return labels, "1.0" }},
			exec, w.log, prometheus.NewRegistry())
		stops = append(stops, w.run(target+"/"+string(p), svc.Run))
		natstest.Eventually(w.t, natstest.Patience, target+"/"+string(p)+" ready", svc.Ready)
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}

// A selector chooses, among the targets the running services announce,
// those its labels match; the coordinator records them in the saga, whose
// batches are cut from them, and a selector matching none is refused.
func TestTargetsChosenBySelector(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "other")
		w.agent("web-1", map[string]string{"role": "web", "zone": "dmz"}, nil)
		w.agent("web-2", map[string]string{"role": "web", "zone": "lan"}, nil)
		w.agent("db-1", map[string]string{"role": "db", "zone": "dmz"}, nil)
		c, _ := w.coordinator("c1")

		l, err := c.Targets(context.Background(), "role=web")
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Targets(); !slices.Equal(got, []string{"web-1", "web-2"}) || len(l.Entries) != 8 {
			t.Fatalf("role=web lists %v (%d entries)", got, len(l.Entries))
		}
		if e := l.Entries[0]; e.Version != "1.0" || e.Host != "web-1" || e.Labels["zone"] != "dmz" || e.Seen.IsZero() {
			t.Fatalf("entry %+v", e)
		}

		// The CLI's way: the NATS API.
		nl, err := api.NewClient(w.nc).Targets(context.Background(), "zone=dmz")
		if err != nil {
			t.Fatal(err)
		}
		if got := nl.Targets(); !slices.Equal(got, []string{"db-1", "web-1"}) {
			t.Fatalf("zone=dmz over NATS lists %v", got)
		}
		if _, err := api.NewClient(w.nc).Targets(context.Background(), "zone"); !errors.Is(err, api.ErrBadRequest) ||
			!strings.Contains(err.Error(), "key=value") {
			t.Fatalf("a bad selector over NATS: %v", err)
		}

		r := request("test")
		r.Spec.Selector = "role=web"
		id := w.submit(r)
		s := w.wait(id, natstest.Patience, saga.StateSucceeded)
		if !slices.Equal(s.Request.Spec.Targets, []string{"web-1", "web-2"}) || s.Request.Spec.Selector != "role=web" {
			t.Fatalf("recorded targets %v, selector %q", s.Request.Spec.Targets, s.Request.Spec.Selector)
		}
		if fmt.Sprint(s.Batches) != "[[web-1] [web-2]]" {
			t.Fatalf("batches %v", s.Batches)
		}
		for step := range w.executions() {
			if strings.Contains(step, "db-1") || strings.Contains(step, "other") {
				t.Fatalf("%s executed: not chosen by the selector", step)
			}
		}

		// A share of the targets is a share of those chosen.
		r = request("test")
		r.Spec.Selector = "role=web"
		r.Spec.Rollout = spec.Rollout{BatchPercent: 100}
		s = w.wait(w.submit(r), natstest.Patience, saga.StateSucceeded)
		if fmt.Sprint(s.Batches) != "[[web-1 web-2]]" {
			t.Fatalf("batches of 100%%: %v", s.Batches)
		}

		r = request("test")
		r.Spec.Selector = "role=web,zone=moon"
		if e := w.refusal(w.submit(r)); !strings.Contains(e.Reason, `selector "role=web,zone=moon" matches no target`) {
			t.Fatalf("reason %q", e.Reason)
		}
	})
}

// A target whose agent stopped after its saga was accepted is refused when
// its batch comes, at once and with the reason, rather than left to wait
// for its phase's deadline with its command in the work queue.
func TestATargetWhoseAgentStoppedIsRefusedBeforeItsBatch(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "other")
		entered, gate := make(chan struct{}, 1), make(chan struct{})
		held := func(ctx context.Context, c events.Command, p phase.Progress) (phase.Outcome, error) {
			if c.Phase == events.Deploy && c.Action == events.ActionApply {
				select {
				case entered <- struct{}{}:
				default:
				}
				select {
				case <-gate:
				case <-ctx.Done():
					return phase.Outcome{}, ctx.Err()
				}
			}
			return w.execute(ctx, c, p)
		}
		w.agent("web-1", map[string]string{"role": "web"}, held)
		stopWeb2 := w.agent("web-2", map[string]string{"role": "web"}, nil)
		w.coordinator("c1")

		r := request("test")
		r.Spec.Selector = "role=web"
		// Far beyond the test's patience: only a refusal ends it in time.
		r.Spec.Timeouts.Deploy, r.Spec.Timeouts.Rollback = sec(600), sec(600)
		id := w.submit(r)
		<-entered // batch 1 (web-1) is deploying: web-2 was backed up, not deployed
		stopWeb2()
		close(gate)

		s := w.wait(id, natstest.Patience)
		st, ok := step(s, events.Deploy, events.ActionApply, "web-2")
		if !ok || st.Status != saga.StepFailed || st.Reason != events.ReasonUnserved ||
			!strings.Contains(st.Error, `no deploy instance serves target "web-2"`) {
			t.Fatalf("web-2's deploy: %+v (found %v)", st, ok)
		}
		if s.State != saga.StateRollbackFailed || !strings.Contains(s.Reason, "web-2") {
			t.Fatalf("saga %s: %s", s.State, s.Reason)
		}
		if rb, ok := step(s, events.Deploy, events.ActionRollback, "web-1"); !ok || rb.Status != saga.StepSucceeded {
			t.Fatalf("web-1 not rolled back: %+v", rb)
		}
		if n := w.executions()[st.ID]; n != 0 {
			t.Fatalf("web-2's deploy executed %d times", n)
		}
	})
}

func step(s saga.Saga, p events.Phase, a events.Action, target string) (saga.Step, bool) {
	for _, st := range s.Steps {
		if st.Phase == p && st.Action == a && st.Target == target {
			return *st, true
		}
	}
	return saga.Step{}, false
}
