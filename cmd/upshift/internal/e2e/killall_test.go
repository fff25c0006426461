package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/upshift/upshift/cmd/upshift/internal/devstack"
	"github.com/upshift/upshift/cmd/upshift/internal/view"
	"github.com/upshift/upshift/pkg/artifact"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/coordinatord"
	"github.com/upshift/upshift/services/deploy"
)

// Settings of the random-kill test.
const (
	// killDeployAckWait is the deploy service's ack wait: an apply whose
	// service died is delivered again only after it. It is well above
	// killMaxDark, so a target left stopped until the redelivery (no
	// recovery at start) fails the test.
	killDeployAckWait = 15 * time.Second
	// killMaxDark is the longest a target may answer nothing: an apply's
	// stop-to-start, or a kill in it and the restart of deploy, which
	// starts the stopped release again at once.
	killMaxDark = 10 * time.Second
)

// killSagas is the number of sagas of the random-kill test: 12 by default,
// sized for CI under the race detector; UPSHIFT_KILL_SAGAS for more (300
// for a long run by hand).
func killSagas(t *testing.T) int {
	v := os.Getenv("UPSHIFT_KILL_SAGAS")
	if v == "" {
		return 12
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("UPSHIFT_KILL_SAGAS=%q: want a positive number of sagas", v)
	}
	return n
}

// killSeed is the random source's seed: UPSHIFT_KILL_SEED replays a run's
// choices (which sagas fail, which process is killed when, and for how
// long it stays down); the processes' own timing is not replayed.
func killSeed(t *testing.T) uint64 {
	v := os.Getenv("UPSHIFT_KILL_SEED")
	if v == "" {
		return uint64(time.Now().UnixNano())
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("UPSHIFT_KILL_SEED=%q: want an unsigned integer", v)
	}
	return n
}

// noticeHook is a webhook receiver that takes a moment over each request
// (so notify is sometimes killed mid-delivery) and keeps the notice ids it
// received, by webhook-id, as a receiver de-duplicating by it would.
type noticeHook struct {
	mu       sync.Mutex
	requests int
	notices  map[string]string // webhook-id -> notice id
}

func (h *noticeHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	time.Sleep(20 * time.Millisecond)
	env, err := events.Decode(body)
	id := r.Header.Get("webhook-id")
	if err != nil || id == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.requests++
	h.notices[id] = env.ID
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// released are the versions the demo builds.
var released = map[string]bool{"1.0": true, "1.1": true, "1.2": true}

// prober asks a target for its version every 50 ms and keeps the longest
// time it answered nothing.
type prober struct {
	d        *devstack.Demo
	mu       sync.Mutex
	darkFrom time.Time // zero: it answers
	longest  time.Duration
	longAt   time.Time
	bad      []string // answers that are no release's
	seen     map[string]int
}

func (p *prober) run(ctx context.Context) {
	client := &http.Client{Timeout: time.Second}
	for ctx.Err() == nil {
		v, err := p.version(ctx, client)
		now := time.Now()
		p.mu.Lock()
		switch {
		case err != nil && p.darkFrom.IsZero():
			p.darkFrom = now
		case err == nil && !p.darkFrom.IsZero():
			p.end(now)
		}
		if err == nil {
			p.seen[v]++
			if !released[v] && len(p.bad) < 5 {
				p.bad = append(p.bad, v)
			}
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *prober) end(now time.Time) {
	if d := now.Sub(p.darkFrom); d > p.longest {
		p.longest, p.longAt = d, p.darkFrom
	}
	p.darkFrom = time.Time{}
}

func (p *prober) version(ctx context.Context, client *http.Client) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.d.Target.Health.VersionURL, nil)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct{ Version string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d, %v", resp.StatusCode, err)
	}
	return body.Version, nil
}

// dark says whether the target answers nothing now.
func (p *prober) dark() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.darkFrom.IsZero()
}

// result is the longest dark time, one still going included.
func (p *prober) result() (time.Duration, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.darkFrom.IsZero() {
		p.end(time.Now())
	}
	return p.longest, p.longAt
}

// killSaga is one saga of the random-kill test.
type killSaga struct {
	id, target, from, to string
	want                 saga.State
	end                  events.SagaEvent
}

// TestEveryProcessKilledAtRandom runs the coordinator, precheck, backup,
// deploy, verify and notify as processes and kills each with SIGKILL at
// random moments, again and again, while sagas run on several targets at
// once (one at a time per target, since a precheck checks the installed
// release); a third of them upgrade to a release that fails verification,
// so roll-backs and restores run under the kills too. Each killed process
// is started again at once or after a short pause. Then:
//   - every saga ended as it should, each target serves the release its
//     last saga left, and no stopped mark or hook record is left behind;
//   - every step, compensations included, was executed once in effect: a
//     second run of a step (read from the services' own reports on EVENTS,
//     numbered by the delivery that ran it) is allowed only after its
//     service was killed during the run before, and no run starts after
//     the step's outcome was reported, which the phase service's record of
//     a finished step prevents; a roll-back compensates its apply and its
//     backup exactly once each;
//   - every notice of every saga event reached the webhook receiver;
//   - each target, probed every 50 ms throughout, answered with one release
//     or another and was never dark for longer than killMaxDark: a deploy
//     killed between a stop and a start starts the release again when it
//     restarts, not an ack wait later.
//
// It runs twice: the six services as processes, the coordinator keeping its
// sagas in JetStream KV; then production's host layout, the four phases in
// one upshift-agent process (killed as one) beside the coordinator and
// notify, the coordinator keeping its sagas in PostgreSQL (a database of
// the test's own).
func TestEveryProcessKilledAtRandom(t *testing.T) {
	endToEnd(t)
	t.Run("services on kv", func(t *testing.T) { everyProcessKilled(t, coordinatord.StoreKV, services) })
	t.Run("agent on postgres", func(t *testing.T) {
		everyProcessKilled(t, coordinatord.StorePostgres, []string{"coordinator", "agent", "notify"})
	})
}

func everyProcessKilled(t *testing.T, store string, services []string) {
	seed := killSeed(t)
	n := killSagas(t)
	t.Logf("seed %d (replay with UPSHIFT_KILL_SEED=%d), %d sagas on the %s store, processes %v", seed, seed, n, store, services)
	// deployer is the process deploying, whose kill may leave a target
	// dark; host names the process of each phase.
	deployer := "deploy"
	if slices.Contains(services, "agent") {
		deployer = "agent"
	}
	host := func(p events.Phase) string {
		if deployer == "agent" {
			return "agent"
		}
		return string(p)
	}
	var storeEnv []string
	if store == coordinatord.StorePostgres {
		storeEnv = []string{"UPSHIFT_STORE=postgres", "UPSHIFT_DATABASE_URL=" + pgtest.Database(t)}
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	nTargets := min(max(n/2, 1), 12)
	srv := natstest.Server(t)
	nc, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	// The targets, each with its demo application running 1.0.
	var demos []*devstack.Demo
	tf := targets.File{Targets: map[string]targets.Target{}}
	for i := range nTargets {
		d, err := devstack.NewDemo(t.TempDir(), artifacts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Teardown(context.Background()) })
		name := fmt.Sprintf("kill-%d", i)
		d.Target.Name = name
		if d.Registry, err = targets.New(map[string]targets.Target{name: d.Target}, d.Dir); err != nil {
			t.Fatal(err)
		}
		d.Target, _ = d.Registry.Get(name)
		install(ctx, t, d, "1.0")
		demos = append(demos, d)
		tf.Targets[name] = d.Target
	}

	hook := &noticeHook{notices: map[string]string{}}
	recv := httptest.NewServer(hook)
	t.Cleanup(recv.Close)
	dir := t.TempDir()
	routes, secret := hookRoutes(t, dir, recv.URL)

	c := &cluster{t: t, srv: srv, js: js, client: api.NewClient(nc), d: demos[0], dir: dir,
		procs: map[string]*exec.Cmd{}, ops: map[string]string{}}
	c.targets = filepath.Join(dir, "targets.json")
	b, _ := json.Marshal(tf)
	if err := os.WriteFile(c.targets, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// Short ack waits, so a killed process's work comes back soon, except
	// deploy's (see killDeployAckWait); deliveries enough to outlast the
	// kills.
	c.auth = func(name string) ([]string, []string) {
		switch name {
		case "coordinator":
			return []string{"--ack-wait", "3s", "--max-deliver", "100"}, storeEnv
		case "notify":
			return []string{"--routes", routes, "--ack-wait", "2s", "--max-deliver", "100",
				"--retry-base", "100ms", "--retry-max", "1s"}, []string{"UPSHIFT_TEST_HOOK_SECRET=" + secret}
		case "deploy", "agent": // the agent's phases share one --ack-wait
			return []string{"--ack-wait", killDeployAckWait.String(), "--max-deliver", "20"}, nil
		default:
			return []string{"--ack-wait", "3s", "--max-deliver", "20"}, nil
		}
	}
	for _, s := range services {
		c.start(s)
	}
	for _, s := range services {
		c.ready(s)
	}

	probers := make([]*prober, nTargets)
	pctx, stopProbing := context.WithCancel(ctx)
	var probing sync.WaitGroup
	for i, d := range demos {
		probers[i] = &prober{d: d, seen: map[string]int{}}
		probing.Go(func() { probers[i].run(pctx) })
	}

	// Each target's sagas, one after the other: a third to 1.2, which
	// fails verification and rolls back; the others between 1.0 and 1.1.
	plans := make([][]*killSaga, nTargets)
	current := make([]string, nTargets)
	for i := range current {
		current[i] = "1.0"
	}
	for k := range n {
		i := k % nTargets
		s := &killSaga{target: demos[i].Target.Name, from: current[i], want: saga.StateSucceeded}
		if rng.IntN(3) == 0 {
			s.to, s.want = "1.2", saga.StateRolledBack
		} else {
			s.to = map[string]string{"1.0": "1.1", "1.1": "1.0"}[current[i]]
			current[i] = s.to
		}
		plans[i] = append(plans[i], s)
	}
	// A target's driver goes on past its plan, between 1.0 and 1.1, while
	// the deployer has not yet been killed with a target dark, up to three
	// times the plan: a fast enough run ended its plan before that kill.
	var darkKilled atomic.Bool
	start := time.Now()
	var drivers sync.WaitGroup
	for i, d := range demos {
		planned := len(plans[i])
		drivers.Go(func() {
			for k := 0; ; k++ {
				if k == len(plans[i]) {
					if darkKilled.Load() || k >= 3*planned {
						break
					}
					to := map[string]string{"1.0": "1.1", "1.1": "1.0"}[current[i]]
					plans[i] = append(plans[i], &killSaga{target: d.Target.Name, from: current[i], to: to, want: saga.StateSucceeded})
					current[i] = to
				}
				s := plans[i][k]
				r := d.Request(s.from, s.to)
				r.Metadata.Name = fmt.Sprintf("%s %s to %s", s.target, s.from, s.to)
				r.Spec.Targets = []string{s.target}
				r.Spec.Timeouts = spec.Timeouts{Precheck: sec(120), Backup: sec(180), Deploy: sec(180), Verify: sec(120), Rollback: sec(180)}
				var err error
				if s.id, err = c.client.Submit(ctx, r); err != nil {
					t.Errorf("submit to %s: %v", s.target, err)
					return
				}
				wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
				s.end, err = view.Watch(wctx, js, s.id, nil)
				cancel()
				if err != nil {
					t.Errorf("saga %s on %s: %v", s.id, s.target, err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { drivers.Wait(); close(done) }()

	// Kill until every saga has ended: each process in turn, in a random
	// order each round (the deployer first in the first), after a random
	// time; deploy, the first time and then every other time, when a
	// target is dark (between a stop and a start).
	killable := slices.Clone(services)
	kills := map[string][]time.Time{}
	darkKills := 0 // of deploy, while a target was dark
	dark := func() bool {
		return slices.ContainsFunc(probers, func(p *prober) bool { return p.dark() })
	}
	wait := func(d time.Duration) bool {
		select {
		case <-done:
			return false
		case <-time.After(d):
			return true
		}
	}
	first := true
killing:
	for {
		order := rng.Perm(len(killable))
		if first {
			// The deployer first in the first round: with six processes a
			// round takes about 15 s, and a fast run can end before the
			// deployer's turn comes, never killed with a target dark.
			first = false
			d := slices.Index(killable, deployer)
			order = append([]int{d}, slices.DeleteFunc(order, func(i int) bool { return i == d })...)
		}
		for _, i := range order {
			name := killable[i]
			if !wait(time.Duration(1000+rng.IntN(3000)) * time.Millisecond) {
				break killing
			}
			if name == deployer && (len(kills[name]) == 0 || rng.IntN(2) == 0) {
				for until := time.Now().Add(10 * time.Second); !dark() && time.Now().Before(until); {
					if !wait(10 * time.Millisecond) {
						break killing
					}
				}
			}
			if name == deployer && dark() {
				darkKills++
				darkKilled.Store(true)
			}
			c.kill(name)
			kills[name] = append(kills[name], time.Now())
			if pause := rng.IntN(3); pause > 0 { // a third at once
				time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
			}
			c.start(name)
		}
	}
	took := time.Since(start)
	stopProbing()
	probing.Wait()

	// Every saga ended as planned; each target serves its last release.
	var sagas []*killSaga
	for i, d := range demos {
		for _, s := range plans[i] {
			if s.id == "" || s.end.Kind == "" {
				t.Errorf("a saga on %s from %s to %s did not end", s.target, s.from, s.to)
				continue
			}
			if saga.State(s.end.Kind) != s.want {
				t.Errorf("saga %s on %s from %s to %s ended %s (%s), want %s", s.id, s.target, s.from, s.to, s.end.Kind, s.end.Reason, s.want)
			}
			sagas = append(sagas, s)
		}
		r := &rig{t: t, d: d}
		if got := r.serving(); got != current[i] {
			t.Errorf("%s serves %s, want %s", d.Target.Name, got, current[i])
		}
		for _, f := range []string{deploy.StoppedFile, deploy.HookFile} {
			if _, err := os.Stat(filepath.Join(d.Target.Root, f)); err == nil {
				t.Errorf("%s: %s left behind", d.Target.Name, f)
			}
		}
	}

	// Steps: every run explained by a kill, none after an outcome; every
	// roll-back compensates once.
	type stepRuns struct {
		phase  events.Phase
		starts map[int]time.Time // run -> its start
		final  int               // the run the first outcome came from (0: none)
	}
	runs := map[string]*stepRuns{}
	for _, ph := range []events.Phase{events.Precheck, events.Backup, events.Deploy, events.Verify} {
		for _, r := range natstest.ReadEvents[events.StepResult](t, js, events.StreamEvents, events.ResultFilter(ph), events.TypeStep) {
			sr := runs[r.Step]
			if sr == nil {
				sr = &stepRuns{phase: ph, starts: map[int]time.Time{}}
				runs[r.Step] = sr
			}
			// A run is known by any of its reports: one done quickly
			// is reported by its result alone (phase.DefaultStartedAfter).
			if _, ok := sr.starts[r.Run]; !ok && r.Run > 0 {
				sr.starts[r.Run] = r.StartedAt
			}
			if r.Status.Final() && sr.final == 0 {
				sr.final = r.Run
			}
		}
	}
	killedBetween := func(phase events.Phase, from, to time.Time) bool {
		return slices.ContainsFunc(kills[host(phase)], func(k time.Time) bool {
			return !k.Before(from.Add(-time.Second)) && !k.After(to)
		})
	}
	var steps, compensations, reruns int
	for _, s := range sagas {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		var v api.View
		natstest.Eventually(t, time.Minute, "saga "+s.id+" from the coordinator", func() bool {
			var err error
			v, err = c.client.Get(ctx, s.id)
			return err == nil
		})
		cancel()
		if v.Saga.State != s.want {
			t.Errorf("saga %s is %s, want %s", s.id, v.Saga.State, s.want)
		}
		undone := map[string]int{}
		var undo []string
		for _, st := range v.Saga.Steps {
			steps++
			if st.Compensates != "" {
				compensations++
				undone[st.Compensates]++
				undo = append(undo, string(st.Phase)+" "+string(st.Action))
				if st.Status != saga.StepSucceeded {
					t.Errorf("saga %s: compensation %s %s is %s", s.id, st.Phase, st.Action, st.Status)
				}
			}
			sr := runs[st.ID]
			if sr == nil {
				t.Errorf("saga %s: step %s (%s %s) %s, and no report of it on EVENTS", s.id, st.ID, st.Phase, st.Action, st.Status)
				continue
			}
			nums := make([]int, 0, len(sr.starts))
			for r := range sr.starts {
				nums = append(nums, r)
			}
			sort.Ints(nums)
			if len(nums) > 1 {
				reruns += len(nums) - 1
				t.Logf("step %s (%s %s on %s) ran %d times: runs %v", st.ID, st.Phase, st.Action, st.Target, len(nums), nums)
			}
			for j := 1; j < len(nums); j++ {
				if !killedBetween(sr.phase, sr.starts[nums[j-1]], sr.starts[nums[j]]) {
					t.Errorf("saga %s: step %s (%s %s) ran again (run %d at %s) without its service killed since run %d (%s)",
						s.id, st.ID, st.Phase, st.Action, nums[j], sr.starts[nums[j]].Format(time.StampMilli),
						nums[j-1], sr.starts[nums[j-1]].Format(time.StampMilli))
				}
			}
			if sr.final != 0 && nums[len(nums)-1] > sr.final {
				t.Errorf("saga %s: step %s (%s %s) ran again (run %d) after run %d reported its outcome",
					s.id, st.ID, st.Phase, st.Action, nums[len(nums)-1], sr.final)
			}
		}
		for id, k := range undone {
			if k != 1 {
				t.Errorf("saga %s: step %s compensated %d times", s.id, id, k)
			}
		}
		sort.Strings(undo)
		want := []string(nil)
		if s.want == saga.StateRolledBack {
			want = []string{"backup restore", "deploy rollback"}
		}
		if !slices.Equal(undo, want) {
			t.Errorf("saga %s: compensations %v, want %v", s.id, undo, want)
		}
	}

	// Notices: one per saga event and team, each delivered.
	want := map[string]bool{}
	for _, b := range natstest.Read(t, js, events.StreamEvents, events.SagaFilter()) {
		env, err := events.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		var ev events.SagaEvent
		if err := events.Open(env, events.TypeSaga, &ev); err != nil {
			t.Fatal(err)
		}
		teams := slices.Clone(ev.Teams) // as notify reads them
		if len(teams) == 0 {
			teams = []string{ev.Team}
		}
		for _, team := range append(teams, ev.Audience...) {
			if team != "" {
				want[env.ID+"/"+team] = true
			}
		}
	}
	natstest.Eventually(t, 2*time.Minute, "every notice delivered", func() bool {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		got := map[string]bool{}
		for _, id := range hook.notices {
			got[id] = true
		}
		for id := range want {
			if !got[id] {
				return false
			}
		}
		return true
	})

	// Never dark for long, never a strange answer.
	var darkest time.Duration
	for _, p := range probers {
		longest, at := p.result()
		darkest = max(darkest, longest)
		if longest > killMaxDark {
			t.Errorf("%s answered nothing for %s from %s (deploy killed at %v)", p.d.Target.Name, longest.Round(time.Millisecond),
				at.Format(time.StampMilli), stamps(kills[deployer]))
		}
		if len(p.bad) > 0 {
			t.Errorf("%s answered with versions %v", p.d.Target.Name, p.bad)
		}
	}

	counts := make([]string, 0, len(killable))
	total := 0
	for _, s := range killable {
		counts = append(counts, fmt.Sprintf("%s %d", s, len(kills[s])))
		total += len(kills[s])
	}
	hook.mu.Lock()
	delivered, requests := len(hook.notices), hook.requests
	hook.mu.Unlock()
	t.Logf("%d sagas on %d targets in %s; %d kills (%s; %s %d times while a target was dark); %d steps (%d compensations), %d runs again after a kill; "+
		"%d notices delivered (%d requests); longest dark time %s",
		len(sagas), nTargets, took.Round(time.Second), total, strings.Join(counts, ", "), deployer, darkKills, steps, compensations, reruns,
		delivered, requests, darkest.Round(time.Millisecond))
	if darkKills == 0 {
		t.Errorf("%s was never killed while a target was dark: the run was too short (seed %d)", deployer, seed)
	}
}

func stamps(ts []time.Time) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Format(time.StampMilli))
	}
	return out
}

func sec(n int) spec.Duration { return spec.Duration{Duration: time.Duration(n) * time.Second} }

// install puts version on d's target outside any saga, as Demo.Install
// does for a target named otherwise.
func install(ctx context.Context, t *testing.T, d *devstack.Demo, version string) {
	a := d.Artifacts[version]
	x := &deploy.Executor{Targets: d.Registry, Artifacts: &artifact.Store{Dir: filepath.Join(d.Dir, "bootstrap-artifacts")}}
	out, err := x.Execute(ctx, events.Command{Step: "bootstrap", Saga: "bootstrap", Phase: events.Deploy,
		Action: events.ActionApply, Target: d.Target.Name, Attempt: 1,
		Upgrade: events.Upgrade{Kind: string(spec.KindUpgrade), Software: "demo-app", To: version,
			Artifact: events.Artifact{URL: a.URL, Digest: a.Digest}}}, func(string) {})
	if err != nil || out.Failed {
		t.Fatalf("install %s on %s: %v %s", version, d.Target.Name, err, out.Error)
	}
}
