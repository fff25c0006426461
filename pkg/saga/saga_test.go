package saga_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func request(kind spec.Kind, batch int, targets ...string) spec.Request {
	r := spec.Request{
		APIVersion: spec.APIVersion, Kind: kind,
		Metadata: spec.Metadata{Team: "platform", Environment: "test"},
		Spec: spec.Spec{
			Software: "demo", From: "1.0", Targets: targets,
			Rollout: spec.Rollout{BatchSize: batch},
		},
	}
	if kind == spec.KindInstall {
		r.Spec.From = ""
	}
	if kind.Installs() {
		r.Spec.To = "1.1"
		r.Spec.Artifact = spec.Artifact{URL: "file:///pkg.tar.gz", Digest: "sha256:" + strings.Repeat("a", 64)}
	} else {
		r.Spec.Maintenance = &spec.Maintenance{Actions: []string{"reindex"}}
	}
	return r.WithDefaults()
}

// run drives one saga and keeps what a coordinator would have sent.
type run struct {
	t    *testing.T
	s    saga.Saga
	now  time.Time
	cmds []events.Command // every command, in the order issued
	evts []events.SagaEvent
	last saga.Effects // the last transition that sent commands or ended the saga
}

func start(t *testing.T, req spec.Request, opts saga.Options) *run {
	t.Helper()
	r := &run{t: t, s: saga.New("s1", req, opts, t0), now: t0}
	r.must(saga.Input{Kind: saga.InputStart})
	return r
}

// apply feeds an input and returns the effects; ignored inputs are allowed.
func (r *run) apply(in saga.Input) saga.Effects {
	r.t.Helper()
	if in.At.IsZero() {
		in.At = r.now
	}
	// Apply leaves the saga it is given as it was: the coordinator applies
	// the next input to the saga it kept.
	was, err := json.Marshal(r.s)
	if err != nil {
		r.t.Fatal(err)
	}
	next, eff := saga.Apply(r.s, in)
	if is, _ := json.Marshal(r.s); !bytes.Equal(is, was) {
		r.t.Fatalf("applying %s changed the saga it was given", in.Kind)
	}
	if eff.Ignored == "" && next.Seq != r.s.Seq+1 {
		r.t.Fatalf("seq %d -> %d after %s", r.s.Seq, next.Seq, in.Kind)
	}
	r.s = next
	if len(eff.Commands) > 0 || eff.Ignored == "" && len(eff.Events) > 0 && r.s.State.Terminal() {
		r.last = eff
	}
	r.cmds = append(r.cmds, eff.Commands...)
	r.evts = append(r.evts, eff.Events...)
	return eff
}

func (r *run) must(in saga.Input) saga.Effects {
	r.t.Helper()
	eff := r.apply(in)
	if eff.Ignored != "" {
		r.t.Fatalf("%s ignored: %s", in.Kind, eff.Ignored)
	}
	return eff
}

func (r *run) ignored(in saga.Input) {
	r.t.Helper()
	before := r.s.Seq
	if eff := r.apply(in); eff.Ignored == "" || r.s.Seq != before {
		r.t.Fatalf("%s was applied, want ignored", in.Kind)
	}
}

func result(c events.Command, status events.Status) *events.StepResult {
	res := &events.StepResult{Step: c.Step, Saga: c.Saga, Phase: c.Phase, Action: c.Action,
		Target: c.Target, Attempt: c.Attempt, Status: status}
	if status == events.StatusFailed {
		res.Error = "boom"
	}
	return res
}

// answer reports status for every command of the last transition.
func (r *run) answer(status events.Status) {
	r.t.Helper()
	cmds := r.last.Commands
	for _, c := range cmds {
		r.must(saga.Input{Kind: saga.InputReport, Result: result(c, status)})
	}
}

func (r *run) report(c events.Command, status events.Status) saga.Effects {
	r.t.Helper()
	return r.apply(saga.Input{Kind: saga.InputReport, Result: result(c, status)})
}

func (r *run) state(want saga.State) {
	r.t.Helper()
	if r.s.State != want {
		r.t.Fatalf("state %s (%s), want %s", r.s.State, r.s.Reason, want)
	}
}

func names(cmds []events.Command) []string {
	var out []string
	for _, c := range cmds {
		out = append(out, fmt.Sprintf("%s.%s.%s", c.Phase, c.Action, c.Target))
	}
	return out
}

func (r *run) sent(want ...string) {
	r.t.Helper()
	if got := names(r.last.Commands); strings.Join(got, " ") != strings.Join(want, " ") {
		r.t.Fatalf("commands %v, want %v", got, want)
	}
}

func kinds(evts []events.SagaEvent) string {
	var out []string
	for _, e := range evts {
		out = append(out, e.Kind)
	}
	return strings.Join(out, " ")
}
