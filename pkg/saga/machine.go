package saga

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/window"
)

// InputKind says what happened.
type InputKind string

// Inputs.
const (
	InputStart   InputKind = "start"   // the request was accepted
	InputReport  InputKind = "report"  // a phase service reported on a step
	InputTick    InputKind = "tick"    // time passed: a deadline or a window may be due
	InputApprove InputKind = "approve" // an operator approved
	InputReject  InputKind = "reject"  // an operator rejected
	InputCancel  InputKind = "cancel"  // an operator cancelled
	// InputConfirm: a person confirmed for a role (Role, Actor).
	InputConfirm InputKind = "confirm"
)

// Input is one thing that happened to a saga, at a time.
type Input struct {
	Kind InputKind `json:"kind"`
	// At is when the coordinator applies the input, by its clock: the
	// saga's now.
	At time.Time `json:"at"`
	// Sent is when the input's source made it, by the source's clock (the
	// CloudEvent time of a report), zero if unknown. Reports are handled
	// several at a time and may be applied out of order; Sent puts a
	// step's progress reports back in theirs.
	Sent    time.Time          `json:"sent,omitzero"`
	Result  *events.StepResult `json:"result,omitempty"`
	Actor   string             `json:"actor,omitempty"`
	Comment string             `json:"comment,omitempty"`
	// Role is the role a confirmation is for.
	Role string `json:"role,omitempty"`
}

// Effects are what the coordinator must do after a transition.
type Effects struct {
	Commands []events.Command
	Events   []events.SagaEvent
	// Wake asks to be given a Tick at (or after) each of these times.
	Wake []time.Time
	// Ignored says why the input changed nothing; the saga is unchanged then.
	Ignored string
	// RollBack says why a roll-back began in this transition, if one did.
	RollBack Cause
}

// Cause is why a roll-back began, one of a few fixed values (a metric
// label): the phase whose step failed or timed out, the windows, or an
// operator.
type Cause string

// Causes of a roll-back.
const (
	CauseDeployFailed  Cause = "deploy_failed"
	CauseDeployTimeout Cause = "deploy_timeout"
	CauseVerifyFailed  Cause = "verify_failed"
	CauseVerifyTimeout Cause = "verify_timeout"
	// CauseWatchFailed and CauseWatchTimeout: a target failed, or did not
	// report, in the watch period after the last batch.
	CauseWatchFailed  Cause = "watch_failed"
	CauseWatchTimeout Cause = "watch_timeout"
	// CauseWindow: no maintenance window for the next batch opens in time.
	CauseWindow    Cause = "window"
	CauseCancelled Cause = "cancelled"
)

// Causes lists every cause.
var Causes = []Cause{CauseDeployFailed, CauseDeployTimeout, CauseVerifyFailed, CauseVerifyTimeout, CauseWatchFailed, CauseWatchTimeout,
	CauseWindow, CauseCancelled}

// stepCause is the cause of a roll-back begun by a deploy or verify step
// that did not succeed.
func stepCause(st *Step) Cause {
	timedOut := st.Status == StepTimedOut
	switch {
	case st.Action == events.ActionWatch && timedOut:
		return CauseWatchTimeout
	case st.Action == events.ActionWatch:
		return CauseWatchFailed
	case st.Phase == events.Verify && timedOut:
		return CauseVerifyTimeout
	case st.Phase == events.Verify:
		return CauseVerifyFailed
	case timedOut:
		return CauseDeployTimeout
	}
	return CauseDeployFailed
}

// Apply returns the saga after the input and the effects of the transition.
// s itself is not modified. When the input has no effect (a duplicate, a
// late report, a decision that comes too late) the saga is returned as it
// was and Effects.Ignored says why.
func Apply(s Saga, in Input) (Saga, Effects) {
	n := s.clone()
	m := &machine{s: &n, at: in.At.UTC()}
	switch in.Kind {
	case InputStart:
		m.start()
	case InputReport:
		if in.Result == nil {
			m.ignore("report without a result")
		} else {
			m.report(*in.Result, orAt(in.Sent, m.at))
		}
	case InputTick:
		m.tick()
	case InputApprove:
		m.approve(in)
	case InputReject:
		m.reject(in)
	case InputCancel:
		m.cancel(in)
	case InputConfirm:
		m.confirm(in)
	default:
		m.ignore(fmt.Sprintf("unknown input %q", in.Kind))
	}
	if m.ignored != "" {
		return s, Effects{Ignored: m.ignored}
	}
	n.Seq++
	n.UpdatedAt = m.at
	for i := range m.eff.Events {
		m.stamp(&m.eff.Events[i])
	}
	return n, m.eff
}

type machine struct {
	s       *Saga
	at      time.Time
	eff     Effects
	ignored string
	// owned says the saga's step list is the machine's own (copied, or
	// grown by an append, in this transition); mine are the steps it
	// copied or made. The rest are shared with the saga given to Apply.
	owned bool
	mine  map[*Step]bool
}

// edit returns the step at index i for the machine to change: the list and
// the step are copied the first time, so that the saga given to Apply stays
// as it was. Copying the list copies pointers only.
func (m *machine) edit(i int) *Step {
	if !m.owned {
		m.s.Steps, m.owned = slices.Clone(m.s.Steps), true
	}
	st := m.s.Steps[i]
	if !m.mine[st] {
		c := *st
		st = &c
		m.s.Steps[i] = st
		m.own(st)
	}
	return st
}

// own records a step as the machine's to change.
func (m *machine) own(st *Step) {
	if m.mine == nil {
		m.mine = map[*Step]bool{}
	}
	m.mine[st] = true
}

// editing returns st, one of the saga's steps, for the machine to change.
func (m *machine) editing(st *Step) *Step {
	if m.mine[st] {
		return st
	}
	for i := len(m.s.Steps) - 1; i >= 0; i-- {
		if m.s.Steps[i] == st {
			return m.edit(i)
		}
	}
	panic("saga: editing a step not in the saga")
}

// from is where the steps the saga may wait for begin (Saga.Since).
func (m *machine) from() int {
	if m.s.State == StateRollingBack && m.s.Next >= len(m.s.Plan) {
		return 0 // the end waits for the targets rolled back alone, in any batch
	}
	return min(m.s.Since, len(m.s.Steps))
}

func (m *machine) ignore(why string) { m.ignored = why }

// enter moves to a state and announces it.
func (m *machine) enter(st State, reason string) {
	m.s.Previous, m.s.State, m.s.Reason, m.s.EnteredAt = m.s.State, st, reason, m.at
	if st.Terminal() {
		m.s.Deadline = time.Time{}
	}
	m.note(events.SagaEvent{Kind: string(st), Reason: reason})
}

func (m *machine) note(e events.SagaEvent) { m.eff.Events = append(m.eff.Events, e) }

// stamp fills in what every event of this saga carries.
func (m *machine) stamp(e *events.SagaEvent) {
	r := m.s.Request
	e.Saga, e.Seq, e.State = m.s.ID, m.s.Seq, string(m.s.State)
	if e.Kind == string(m.s.State) {
		e.Previous = string(m.s.Previous)
	}
	e.Name, e.RequestKind, e.Team, e.Teams = r.Metadata.Name, string(r.Kind), r.Metadata.Team, r.Spec.Notify
	e.DryRun = r.Spec.DryRun
	e.Environment, e.Software, e.From, e.To = r.Metadata.Environment, r.Spec.Software, r.Spec.From, r.Spec.To
	e.Targets = r.Spec.Targets
	if n := len(e.Targets); n > events.MaxNamedTargets {
		e.Targets, e.TargetCount = e.Targets[:events.MaxNamedTargets:events.MaxNamedTargets], n
	}
	e.Batch, e.Batches = m.s.Batch, len(m.s.Batches)
}

func (m *machine) start() {
	if m.s.State != StateRequested {
		m.ignore("already started")
		return
	}
	raw, _ := json.Marshal(m.s.Request)
	m.note(events.SagaEvent{Kind: string(StateRequested), Reason: m.s.Request.Title(), Request: raw})
	m.enter(StatePrechecking, "")
	m.s.Since = len(m.s.Steps)
	deadline := m.at.Add(m.s.Request.Spec.Timeouts.Precheck.Duration)
	m.send(events.Precheck, events.ActionCheck, m.targets(), 0, deadline, deadline, "")
	if m.s.Request.Restores() {
		// Only the backup service knows whether the backup to restore is
		// there and whole: it checks, beside the precheck, before anything
		// is changed.
		m.send(events.Backup, events.ActionCheck, m.targets(), 0, deadline, deadline, "")
	}
	m.wait(deadline)
}

func (m *machine) targets() []string { return m.s.Request.Spec.Targets }

// dispatch sends one command per target and sets the phase deadline.
func (m *machine) dispatch(phase events.Phase, action events.Action, targets []string, batch int, timeout time.Duration, compensates string) {
	deadline := m.at.Add(timeout)
	// A forward step done after the saga gave up on it would do harm; a
	// compensation done late still puts the target back.
	notAfter := deadline
	if compensates != "" {
		notAfter = time.Time{}
	}
	m.send(phase, action, targets, batch, notAfter, deadline, compensates)
	m.wait(deadline)
}

// send sends one command per target, to be started by notAfter (zero: any
// time) and reported by deadline, the phase's deadline; the caller waits
// for the deadline.
func (m *machine) send(phase events.Phase, action events.Action, targets []string, batch int, notAfter, deadline time.Time, compensates string) {
	// Attempts are counted once per call, not once per target: a batch
	// of n targets costs one pass over the steps, not n.
	up := upgrade(*m.s)
	sent := map[string]int{}
	for _, st := range m.s.Steps {
		if st.Phase == phase && st.Action == action {
			sent[st.Target]++
		}
	}
	for _, t := range targets {
		attempt := sent[t] + 1
		sent[t] = attempt
		st := &Step{
			ID:    events.StepID(m.s.ID, phase, action, t, attempt),
			Phase: phase, Action: action, Target: t, Batch: batch, Attempt: attempt,
			Status: StepDispatched, Compensates: compensates,
			DispatchedAt: m.at, Deadline: deadline,
		}
		m.s.Steps, m.owned = append(m.s.Steps, st), true // clipped: a new list
		m.own(st)
		cmd := events.Command{
			Step: st.ID, Saga: m.s.ID, Phase: phase, Action: action, Target: t,
			Batch: batch, Attempt: attempt, Deadline: deadline, NotAfter: notAfter, Compensates: compensates,
			Upgrade: up,
		}
		if compensates != "" {
			// A compensation restores the saga's own backup, whatever
			// the saga restores forward.
			cmd.Upgrade.Backup = ""
		}
		m.eff.Commands = append(m.eff.Commands, cmd)
	}
}

func (m *machine) wait(deadline time.Time) {
	m.s.Deadline = deadline
	m.wake(deadline)
}

// wake asks for a tick at t.
func (m *machine) wake(t time.Time) {
	m.s.Wakes++
	m.eff.Wake = append(m.eff.Wake, t)
}

func upgrade(s Saga) events.Upgrade {
	r := s.Request
	return events.Upgrade{
		Kind: string(r.Kind), Software: r.Spec.Software, From: r.Spec.From, To: r.Spec.To,
		Artifact:    events.Artifact{URL: r.Spec.Artifact.URL, Digest: r.Spec.Artifact.Digest, Signature: r.Spec.Artifact.Signature},
		Environment: r.Metadata.Environment, Actions: r.Actions(), Analyses: s.Analyses(), Purge: purges(r),
		Backup: r.RestoreFrom(),
	}
}

func purges(r spec.Request) []string {
	if r.Spec.Maintenance == nil {
		return nil
	}
	return r.Spec.Maintenance.Purge
}

// report applies a phase service's report, made at sent by its clock.
func (m *machine) report(r events.StepResult, sent time.Time) {
	i := m.s.find(r.Step)
	if i < 0 || r.Saga != m.s.ID {
		m.ignore(fmt.Sprintf("report on unknown step %q", r.Step))
		return
	}
	st := m.edit(i)
	if st.Status.Final() {
		if st.Status == StepTimedOut && r.Status.Final() && st.Late == "" {
			// Recorded for the record; the saga moved on when it timed out.
			st.Late = r.Status
			m.note(events.SagaEvent{Kind: events.KindIgnored, Step: ref(st),
				Reason: fmt.Sprintf("%s of %s reported %s after timing out", st.Action, st.Target, r.Status)})
			return
		}
		if r.Status == events.StatusStarted && m.rerun(st, r) {
			return // a run we had not heard of, reported late
		}
		if r.Status == events.StatusProgress && r.Run > 0 && r.Run != st.Run {
			m.rerun(st, events.StepResult{Run: r.Run, StartedAt: r.StartedAt})
			if m.runSays(st, r.Run, clip(r.Message)) {
				return // an earlier run's last word, reported late
			}
		}
		m.ignore(fmt.Sprintf("step %s is already %s", st.ID, st.Status))
		return
	}
	switch r.Status {
	case events.StatusStarted:
		if st.Status != StepDispatched {
			if m.rerun(st, r) {
				return
			}
			m.ignore(fmt.Sprintf("step %s already started", st.ID))
			return
		}
		st.Status, st.StartedAt, st.Run = StepRunning, orAt(r.StartedAt, m.at), r.Run
	case events.StatusProgress:
		msg := clip(r.Message)
		if r.Run > 0 && st.Run > 0 && r.Run < st.Run {
			// The last word of an earlier run, handled late: kept with
			// that run only.
			m.rerun(st, events.StepResult{Run: r.Run, StartedAt: r.StartedAt})
			if !m.runSays(st, r.Run, msg) {
				m.ignore(fmt.Sprintf("progress of an unknown run %d of step %s", r.Run, st.ID))
			}
			return
		}
		if sent.Before(st.HeartbeatAt) {
			m.ignore(fmt.Sprintf("progress of step %s from %s is older than the last, from %s",
				st.ID, sent.Format(time.RFC3339Nano), st.HeartbeatAt.Format(time.RFC3339Nano)))
			return
		}
		m.runSays(st, r.Run, msg)
		st.Status, st.HeartbeatAt, st.Progress = StepRunning, sent, msg
		if st.Run == 0 {
			st.Run = r.Run // its start is handled later, or was lost
		}
		if st.StartedAt.IsZero() {
			st.StartedAt = orAt(r.StartedAt, sent)
		}
	case events.StatusSucceeded, events.StatusFailed:
		status := StepSucceeded
		if r.Status == events.StatusFailed {
			status = StepFailed
		}
		if st.StartedAt.IsZero() {
			st.StartedAt = orAt(r.StartedAt, m.at)
		}
		if st.Run == 0 {
			st.Run = r.Run
		} else if r.Run > 0 && r.Run != st.Run {
			// The run that ended it, its start not handled yet.
			m.rerun(st, events.StepResult{Run: r.Run, StartedAt: r.StartedAt})
			st.Run = r.Run
		}
		m.finish(st, status, r.Reason, clip(r.Error))
		st.FinishedAt = orAt(r.FinishedAt, m.at)
		st.Output, st.Report = clipOutput(r.Output), clipReport(r.Report)
		m.advance()
	default:
		m.ignore(fmt.Sprintf("unknown status %q", r.Status))
	}
}

// rerun records another run of a running step: its command was delivered
// again and executed again. Reports of different runs may be handled out of
// order; the runs are kept in the order of their numbers, and the step
// shows the latest. It reports whether the report was one.
func (m *machine) rerun(st *Step, r events.StepResult) bool {
	if r.Run <= 0 || st.Run <= 0 || r.Run == st.Run {
		return false
	}
	runs := append([]Run(nil), st.Runs...)
	if len(runs) == 0 {
		// The step's runs are recorded from its second: the first's is
		// what the step showed until now.
		runs = append(runs, Run{N: st.Run, StartedAt: st.StartedAt, Progress: st.Progress})
	}
	i := 0
	for i < len(runs) && runs[i].N < r.Run {
		i++
	}
	if i < len(runs) && runs[i].N == r.Run {
		return false // that run again
	}
	runs = slices.Insert(runs, i, Run{N: r.Run, StartedAt: orAt(r.StartedAt, m.at)})
	st.Runs = runs
	if r.Run > st.Run && !st.Status.Final() {
		st.Run, st.Progress = r.Run, ""
	}
	return true
}

// runSays keeps msg as run n's last word, if the step's runs are recorded
// and n is one of them.
func (m *machine) runSays(st *Step, n int, msg string) bool {
	for i := range st.Runs {
		if st.Runs[i].N == n {
			st.Runs = slices.Clone(st.Runs)
			st.Runs[i].Progress = msg
			return true
		}
	}
	return false
}

func orAt(t, at time.Time) time.Time {
	if t.IsZero() {
		return at
	}
	return t.UTC()
}

func (m *machine) finish(st *Step, status StepStatus, reason, msg string) {
	m.s.Finished++
	st.Status, st.Done, st.Reason, st.Error, st.FinishedAt = status, m.s.Finished, reason, msg, m.at
	if status != StepSucceeded {
		m.note(events.SagaEvent{Kind: events.KindStepFailed, Step: ref(st), Reason: describe(st)})
	}
}

func ref(st *Step) *events.StepRef {
	return &events.StepRef{ID: st.ID, Phase: st.Phase, Action: st.Action, Target: st.Target,
		Batch: st.Batch, Attempt: st.Attempt, Status: string(st.Status), Error: st.Error}
}

func describe(st *Step) string {
	what := fmt.Sprintf("%s %s on %s", st.Phase, st.Action, st.Target)
	if st.Status == StepTimedOut {
		return fmt.Sprintf("%s timed out: %s", what, st.Error)
	}
	return fmt.Sprintf("%s failed: %s", what, st.Error)
}

// tick handles time passing: a phase deadline, an approval or confirmation
// deadline, an announcement.
func (m *machine) tick() {
	if m.s.State.Terminal() {
		m.ignore("saga is over")
		return
	}
	announced := false
	if !m.s.AnnounceAt.IsZero() && !m.at.Before(m.s.AnnounceAt) {
		m.announce()
		announced = true
	}
	if m.s.Deadline.IsZero() || m.at.Before(m.s.Deadline) {
		if !announced {
			m.ignore("nothing due")
		}
		return
	}
	switch m.s.State {
	case StateAwaitingConfirmation:
		m.enter(StateFailed, fmt.Sprintf("no confirmation within %s from %s; nothing was changed",
			m.s.Options.Confirm.Timeout, strings.Join(m.s.Unconfirmed(), ", ")))
		return
	case StateAwaitingApproval:
		m.enter(StateFailed, fmt.Sprintf("no approval within %s", m.s.Options.ApprovalTimeout))
		return
	case StateAwaitingWindow:
		m.window()
		return
	}
	// Each step by its own deadline: a target rolled back alone within its
	// batch's tolerance has a later one than the batch's.
	var next time.Time
	for _, st := range m.current() {
		switch {
		case st.Status.Final():
		case !m.at.Before(st.Deadline):
			m.finish(m.editing(st), StepTimedOut, "timeout", fmt.Sprintf("no result within %s", st.Deadline.Sub(st.DispatchedAt)))
		case next.IsZero() || st.Deadline.Before(next):
			next = st.Deadline
		}
	}
	if !next.IsZero() {
		m.wait(next)
	}
	m.advance()
}

// current returns the steps the saga is waiting for.
func (m *machine) current() []*Step {
	var out []*Step
	for _, st := range m.s.Steps[m.from():] {
		switch m.s.State {
		case StatePrechecking:
			if st.Phase == events.Precheck || st.Phase == events.Backup && st.Action == events.ActionCheck {
				out = append(out, st)
			}
		case StateBackingUp:
			if st.Phase == events.Backup && st.Action == events.ActionArchive && st.Compensates == "" {
				out = append(out, st)
			}
		case StateDeploying:
			if (m.forward(st) || m.alone(st)) && st.Batch == m.s.Batch {
				out = append(out, st)
			}
		case StateVerifying:
			if (st.Phase == events.Verify && st.Action == events.ActionProbe || m.alone(st)) && st.Batch == m.s.Batch {
				out = append(out, st)
			}
		case StateWatching:
			if st.Phase == events.Verify && st.Action == events.ActionWatch {
				out = append(out, st)
			}
		case StateRollingBack:
			if m.s.Next < len(m.s.Plan) && st.Compensates == m.s.Plan[m.s.Next] {
				out = append(out, st)
			}
			if m.s.Next >= len(m.s.Plan) && m.lone(st) {
				// The end waits for the targets rolled back alone.
				out = append(out, st)
			}
		}
	}
	return out
}

// advance moves on once the steps the saga waits for allow it.
func (m *machine) advance() {
	steps := m.current()
	var bad *Step
	done := true
	for _, st := range steps {
		if st.Status.Final() && st.Status != StepSucceeded && bad == nil {
			bad = st
		}
		done = done && st.Status.Final()
	}
	switch m.s.State {
	case StatePrechecking:
		if bad != nil {
			m.enter(StateFailed, describe(bad)+"; nothing was changed")
		} else if done {
			m.afterPrecheck()
		}
	case StateBackingUp:
		if bad != nil {
			m.enter(StateFailed, describe(bad)+"; nothing was deployed, partial backups are discarded")
		} else if done {
			m.deploy(0)
		}
	case StateDeploying:
		if bad != nil && !m.absorb(steps, &done) {
			m.rollBack(stepCause(bad), m.tooMany(bad))
		} else if done {
			m.verify(m.s.Batch)
		}
	case StateVerifying:
		if bad != nil && !m.absorb(steps, &done) {
			m.rollBack(stepCause(bad), m.tooMany(bad))
		} else if done && m.s.Batch+1 < len(m.s.Batches) {
			m.window() // the next batch starts in a window too
		} else if done {
			m.watch()
		}
	case StateWatching:
		if bad != nil {
			m.rollBack(stepCause(bad), describe(bad))
		} else if done {
			m.succeed()
		}
	case StateRollingBack:
		if done {
			if m.s.Next < len(m.s.Plan) {
				m.s.Next++
			}
			m.compensateNext()
		}
	}
}

// alone reports whether st rolls back a target set aside within its
// batch's tolerance.
func (m *machine) alone(st *Step) bool {
	return m.s.State != StateRollingBack && m.lone(st)
}

// lone reports whether st rolls back a target set aside.
func (m *machine) lone(st *Step) bool {
	return st.Compensates != "" && slices.Contains(m.s.SetAside, st.Target)
}

// absorb sets aside the targets of the current batch whose deploy or
// verification failed, if the batch's tolerance allows it: each is rolled
// back alone at once and left out of the rest of the saga. It reports
// whether the saga may go on; it may not if more targets of the batch
// failed than tolerated, if all did, or if a lone roll-back failed. A lone
// roll-back it sends makes the batch not done.
func (m *machine) absorb(steps []*Step, done *bool) bool {
	batch := m.s.Batches[m.s.Batch]
	failed := 0
	for _, t := range batch {
		if slices.Contains(m.s.SetAside, t) {
			failed++
		}
	}
	var fresh []*Step
	for _, st := range steps {
		if !st.Status.Final() || st.Status == StepSucceeded {
			continue
		}
		if st.Compensates != "" {
			return false // a target is left half done: a human is needed, roll everything back
		}
		if !slices.Contains(m.s.SetAside, st.Target) {
			failed++
			fresh = append(fresh, st)
		}
	}
	if failed > m.s.Request.Spec.Rollout.Tolerated(len(batch)) || failed == len(batch) {
		return false
	}
	for _, bad := range fresh {
		m.s.SetAside = append(m.s.SetAside, bad.Target)
		for _, st := range m.s.Steps[m.from():] {
			if !m.forward(st) || st.Target != bad.Target || st.Batch != m.s.Batch {
				continue
			}
			deadline := m.at.Add(m.s.Request.Spec.Timeouts.Rollback.Duration)
			m.send(st.Phase, compensation[st.Action], []string{st.Target}, st.Batch, time.Time{}, deadline, st.ID)
			*done = false
			if deadline.Before(m.s.Deadline) {
				m.wait(deadline)
			}
			break
		}
	}
	return true
}

// tooMany says why a batch rolls everything back: its first failure, and
// how many of its targets failed when some were tolerated.
func (m *machine) tooMany(bad *Step) string {
	ro := m.s.Request.Spec.Rollout
	if ro.MaxFailedPercent == 0 || m.s.State == StateWatching {
		return describe(bad)
	}
	batch := m.s.Batches[m.s.Batch]
	failed := map[string]bool{}
	for _, st := range m.current() {
		if st.Status.Final() && st.Status != StepSucceeded {
			failed[st.Target] = true
		}
	}
	for _, t := range batch {
		if slices.Contains(m.s.SetAside, t) {
			failed[t] = true
		}
	}
	return fmt.Sprintf("%s; %d of the %d targets of batch %d failed, %d tolerated (%d%%)", describe(bad),
		len(failed), len(batch), m.s.Batch+1, ro.Tolerated(len(batch)), ro.MaxFailedPercent)
}

// succeed ends the saga, saying which targets were set aside, if any.
func (m *machine) succeed() {
	if n := len(m.s.SetAside); n > 0 {
		m.enter(StateSucceeded, fmt.Sprintf("%d of %d targets failed within their batch's tolerance and were rolled back alone: %s",
			n, len(m.targets()), strings.Join(m.s.SetAside, ", ")))
		return
	}
	m.enter(StateSucceeded, "")
}

func (m *machine) afterPrecheck() {
	if m.s.Request.Spec.DryRun {
		m.enter(StateChecked, "every check passed; nothing was changed")
		return
	}
	m.planAnnouncement()
	m.awaitConfirmations()
}

// awaitConfirmations waits for the roles that have not confirmed yet, if
// any, then for the approval.
func (m *machine) awaitConfirmations() {
	if missing := m.s.Unconfirmed(); len(missing) > 0 {
		deadline := m.at.Add(m.s.Options.Confirm.Timeout.Duration)
		m.enter(StateAwaitingConfirmation, fmt.Sprintf("waiting for %s to confirm, until %s",
			strings.Join(missing, ", "), deadline.Format(time.RFC3339)))
		m.wait(deadline)
		return
	}
	m.awaitApproval()
}

// awaitApproval waits for the approval, if one is required and not given
// yet, then for the window.
func (m *machine) awaitApproval() {
	if m.s.Options.RequireApproval && m.s.Approval == nil {
		m.enter(StateAwaitingApproval, "approval required")
		m.wait(m.at.Add(m.s.Options.ApprovalTimeout))
		return
	}
	m.window()
}

// WindowHorizon is how far ahead a maintenance window is looked for.
const WindowHorizon = 366 * 24 * time.Hour

// window lets the saga go on (resume) if the request's and the
// environment's windows are both open now; else it waits for the next time
// they are. Windows gate the start of the backup and of every deploy batch.
// If no window opens before the request's deadline the saga fails at once,
// rather than wait for a window it may not use, and rolls back the batches
// it has deployed, if any.
func (m *machine) window() {
	reqWin, err1 := spec.CompileWindows(m.s.Request.Spec.Windows)
	envWin, err2 := spec.CompileWindows(m.s.Options.Windows)
	if err := errors.Join(err1, err2); err != nil {
		m.fail(fmt.Sprintf("maintenance windows: %v", err))
		return
	}
	if len(reqWin) == 0 && len(envWin) == 0 {
		m.resume()
		return
	}
	open, ok := window.Both(reqWin, envWin, m.at, m.at.Add(WindowHorizon))
	deadline := m.s.Request.Spec.Deadline
	switch {
	case !ok:
		m.fail("no maintenance window opens within a year")
	case !deadline.IsZero() && open.After(deadline):
		m.fail(fmt.Sprintf("the next maintenance window opens %s, after the deadline %s",
			open.Format(time.RFC3339), deadline.UTC().Format(time.RFC3339)))
	case !open.After(m.at):
		m.resume()
	default:
		m.enter(StateAwaitingWindow, "next window opens "+open.Format(time.RFC3339))
		m.wait(open)
	}
}

// resume goes on once the windows are open: with the backup, or with the
// next batch once one was deployed.
func (m *machine) resume() {
	if m.deployed() {
		m.deploy(m.s.Batch + 1)
		return
	}
	m.backup()
}

// deployed reports whether a deploy (or maintenance, or restore) step was
// dispatched.
func (m *machine) deployed() bool {
	for _, st := range m.s.Steps {
		if m.forward(st) {
			return true
		}
	}
	return false
}

// work is the phase and action of the saga's deploying state: an upgrade's
// apply, a maintenance run's maintain, or, for a restore by hand, the backup
// service's restore of the backup the request names.
func (m *machine) work() (events.Phase, events.Action) {
	switch r := m.s.Request; {
	case r.Restores():
		return events.Backup, events.ActionRestore
	case r.Kind == spec.KindMaintenance:
		return events.Deploy, events.ActionMaintain
	}
	return events.Deploy, events.ActionApply
}

// forward reports whether st is a step of the deploying state: one that
// changes the target, to be undone if the saga rolls back.
func (m *machine) forward(st *Step) bool {
	phase, action := m.work()
	return st.Phase == phase && st.Action == action && st.Compensates == ""
}

// fail ends a saga whose windows do not let it go on: failed if nothing was
// deployed, else rolling back what was.
func (m *machine) fail(reason string) {
	if m.deployed() {
		m.rollBack(CauseWindow, reason)
		return
	}
	m.enter(StateFailed, reason+"; nothing was changed")
}

// backup archives what the deploy will replace; a first install replaces
// nothing, so it has no backup phase, and neither has a maintenance run
// whose actions change no data (spec.DataActions): there would be nothing
// for a restore to undo.
func (m *machine) backup() {
	if !m.s.AnnounceAt.IsZero() {
		// The tick that was due first may come late: the teams hear
		// before anything is changed, never after.
		m.announce()
	}
	r := m.s.Request
	if r.Spec.Backup.Skip || r.Kind == spec.KindInstall || r.Kind == spec.KindMaintenance && !spec.ChangesData(r.Actions()) {
		m.deploy(0)
		return
	}
	m.enter(StateBackingUp, "")
	m.s.Since = len(m.s.Steps)
	m.dispatch(events.Backup, events.ActionArchive, m.targets(), 0, m.s.Request.Spec.Timeouts.Backup.Duration, "")
}

func (m *machine) deploy(batch int) {
	phase, action := m.work()
	m.s.Batch = batch
	m.enter(StateDeploying, "")
	m.s.Since = len(m.s.Steps) // the verification waits for this batch's lone roll-backs too: it keeps this
	m.dispatch(phase, action, m.s.Batches[batch], batch, m.s.Request.Spec.Timeouts.Deploy.Duration, "")
}

func (m *machine) verify(batch int) {
	m.enter(StateVerifying, "")
	m.dispatch(events.Verify, events.ActionProbe, m.without(m.s.Batches[batch]), batch, m.s.Request.Spec.Timeouts.Verify.Duration, "")
}

// without returns targets less those set aside.
func (m *machine) without(targets []string) []string {
	if len(m.s.SetAside) == 0 {
		return targets
	}
	var out []string
	for _, t := range targets {
		if !slices.Contains(m.s.SetAside, t) {
			out = append(out, t)
		}
	}
	return out
}

// WatchGrace is how long after the watch period's end the saga waits for
// the targets' reports before it times them out: each target's verify
// service stops watching at the period's end (the command's NotAfter) and
// reports then.
const WatchGrace = 30 * time.Second

// watch ends a saga whose last batch verified: succeeded at once, or, with
// a watch period, after watching every target for that long. A failure in
// the period rolls every batch back.
func (m *machine) watch() {
	w := m.s.Watch()
	if w <= 0 {
		m.succeed()
		return
	}
	end := m.at.Add(w)
	m.enter(StateWatching, fmt.Sprintf("every target watched for %s, until %s", w, end.Format(time.RFC3339)))
	m.s.Since = len(m.s.Steps)
	m.send(events.Verify, events.ActionWatch, m.without(m.targets()), m.s.Batch, end, end.Add(WatchGrace), "")
	m.wait(end.Add(WatchGrace))
}

// compensation is the action that undoes a completed one.
var compensation = map[events.Action]events.Action{
	events.ActionApply:   events.ActionRollback,
	events.ActionArchive: events.ActionRestore,
}

// rollBack plans the compensation of every step whose effect may have
// reached a target, newest first, and starts it:
//   - every deploy that was dispatched, finished or not: one still running
//     is newest (its roll-back queues behind it on the target), then the
//     finished ones by the order they finished, failed and timed-out ones
//     included, since they may have half switched;
//   - then every completed backup of a target that a deploy, maintenance
//     or restore step touched, newest first: restoring an untouched target
//     would only redo what is there. A restore by hand is undone so: its
//     own saga's backup, of the state it replaced, is put back.
func (m *machine) rollBack(cause Cause, reason string) {
	var running, finished, backups []*Step
	touched := map[string]bool{}
	for _, st := range m.s.Steps {
		if !m.forward(st) {
			continue
		}
		touched[st.Target] = true
		if st.Action != events.ActionApply || slices.Contains(m.s.SetAside, st.Target) {
			continue // nothing to undo, or undone already, alone
		}
		if st.Status.Final() {
			finished = append(finished, st)
		} else {
			running = append(running, st)
		}
	}
	for _, st := range m.s.Steps {
		if st.Phase == events.Backup && st.Action == events.ActionArchive && st.Status == StepSucceeded && touched[st.Target] {
			backups = append(backups, st)
		}
	}
	slices.Reverse(running)
	newest := func(l []*Step) { sort.Slice(l, func(i, j int) bool { return l[i].Done > l[j].Done }) }
	newest(finished)
	newest(backups)
	m.s.Plan, m.s.Next = nil, 0
	for _, l := range [][]*Step{running, finished, backups} {
		for _, st := range l {
			m.s.Plan = append(m.s.Plan, st.ID)
		}
	}
	m.eff.RollBack = cause
	m.enter(StateRollingBack, reason)
	m.compensateNext()
}

func (m *machine) compensateNext() {
	if m.s.Next < len(m.s.Plan) {
		orig, _ := m.s.Step(m.s.Plan[m.s.Next])
		m.s.Since = len(m.s.Steps)
		m.dispatch(orig.Phase, compensation[orig.Action], []string{orig.Target}, orig.Batch,
			m.s.Request.Spec.Timeouts.Rollback.Duration, orig.ID)
		return
	}
	var wait time.Time
	for _, st := range m.s.Steps {
		if m.lone(st) && !st.Status.Final() && st.Deadline.After(wait) {
			wait = st.Deadline
		}
	}
	if !wait.IsZero() {
		m.wait(wait)
		return
	}
	var failed []string
	for _, st := range m.s.Steps {
		if st.Compensates != "" && st.Status != StepSucceeded {
			f := fmt.Sprintf("%s %s on %s %s", st.Phase, st.Action, st.Target, st.Status)
			if st.Error != "" {
				// What the service says went wrong and what a human must
				// do goes into the reason, and so into the notices.
				f += " (" + clip(st.Error) + ")"
			}
			failed = append(failed, f)
		}
	}
	if len(failed) > 0 {
		m.enter(StateRollbackFailed, fmt.Sprintf("%s; roll-back incomplete, a human is needed: %s", m.s.Reason, strings.Join(failed, ", ")))
		return
	}
	m.enter(StateRolledBack, m.s.Reason)
}

func (m *machine) decision(in Input) *Decision {
	return &Decision{Actor: in.Actor, Comment: in.Comment, At: m.at}
}

func (m *machine) approve(in Input) {
	switch {
	case m.s.State.Terminal() || m.s.State == StateRollingBack:
		m.ignore(fmt.Sprintf("saga is %s", m.s.State))
	case !m.s.Options.RequireApproval:
		m.ignore("this saga needs no approval")
	case m.s.Approval != nil:
		m.ignore(fmt.Sprintf("already approved by %s", m.s.Approval.Actor))
	default:
		m.s.Approval = m.decision(in)
		m.note(events.SagaEvent{Kind: events.KindApproved, Actor: in.Actor, Comment: in.Comment})
		// Given early (while prechecking or awaiting confirmation), it
		// counts when the saga gets there.
		if m.s.State == StateAwaitingApproval {
			m.window()
		}
	}
}

func (m *machine) reject(in Input) {
	switch {
	case !m.s.Options.RequireApproval:
		m.ignore("this saga needs no approval")
	case m.s.Approval != nil:
		m.ignore(fmt.Sprintf("already approved by %s; cancel it instead", m.s.Approval.Actor))
	case m.s.State != StateRequested && m.s.State != StatePrechecking && m.s.State != StateAwaitingConfirmation &&
		m.s.State != StateAwaitingApproval:
		m.ignore(fmt.Sprintf("saga is %s", m.s.State))
	default:
		m.s.Rejection = m.decision(in)
		m.enter(StateRejected, decided("rejected", in))
	}
}

func (m *machine) cancel(in Input) {
	switch m.s.State {
	case StateRequested, StatePrechecking, StateAwaitingConfirmation, StateAwaitingApproval, StateAwaitingWindow, StateBackingUp:
		m.s.Cancel = m.decision(in)
		if m.deployed() { // waiting for a window between batches
			m.rollBack(CauseCancelled, decided("cancelled", in))
			return
		}
		m.enter(StateCancelled, decided("cancelled", in)+"; nothing was deployed")
	case StateDeploying, StateVerifying, StateWatching:
		m.s.Cancel = m.decision(in)
		m.rollBack(CauseCancelled, decided("cancelled", in))
	case StateRollingBack:
		m.ignore("already rolling back")
	default:
		m.ignore(fmt.Sprintf("saga is already %s", m.s.State))
	}
}

func decided(verb string, in Input) string {
	s := verb + " by " + in.Actor
	if in.Comment != "" {
		s += ": " + in.Comment
	}
	return s
}

// A saga keeps a bounded copy of what services report, so that one stored
// saga stays small whatever a hook printed: the whole report stays in its
// event, in EVENTS and in the audit log.
const (
	MaxReportLines = 64 // a target's whole precheck report: a few dozen checks
	MaxOutputKeys  = 16
	MaxText        = 300 // bytes of one detail, output value or error
)

func clip(s string) string {
	if len(s) <= MaxText {
		return s
	}
	cut := MaxText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func clipReport(r []events.ReportLine) []events.ReportLine {
	if len(r) == 0 {
		return nil
	}
	out := make([]events.ReportLine, 0, min(len(r), MaxReportLines))
	for i, l := range r {
		if i == MaxReportLines {
			out = append(out, events.ReportLine{Name: "…", OK: true, Detail: fmt.Sprintf("%d more lines in the step's event", len(r)-i)})
			break
		}
		l.Detail, l.Value, l.Threshold = clip(l.Detail), clip(l.Value), clip(l.Threshold)
		out = append(out, l)
	}
	return out
}

func clipOutput(o map[string]string) map[string]string {
	if len(o) == 0 {
		return nil
	}
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := map[string]string{}
	for _, k := range keys[:min(len(keys), MaxOutputKeys)] {
		out[k] = clip(o[k])
	}
	return out
}
