package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Event types. Commands, reports and the coordinator's decisions each have one
// type; the phase, action, status or kind is in the data and the subject.
const (
	TypeRequest    = "io.upshift.request.submitted"
	TypeControl    = "io.upshift.control.requested"
	TypeCommand    = "io.upshift.command.issued"
	TypeStep       = "io.upshift.step.reported"
	TypeSaga       = "io.upshift.saga.changed"
	TypeNotice     = "io.upshift.notice.published"
	TypeTimer      = "io.upshift.timer.due"
	TypeDeadLetter = "io.upshift.message.deadlettered"
)

// Phase is a phase of a saga and the name of the service that runs it.
type Phase string

// The phases, in the order a saga runs them.
const (
	Precheck Phase = "precheck"
	Backup   Phase = "backup"
	Deploy   Phase = "deploy"
	Verify   Phase = "verify"
)

// Phases lists the phase services.
var Phases = []Phase{Precheck, Backup, Deploy, Verify}

// Action is what a command asks a phase service to do.
type Action string

// The actions, by service.
const (
	ActionCheck    Action = "check"    // precheck
	ActionArchive  Action = "archive"  // backup
	ActionRestore  Action = "restore"  // backup, compensating archive
	ActionApply    Action = "apply"    // deploy
	ActionRollback Action = "rollback" // deploy, compensating apply
	ActionMaintain Action = "maintain" // deploy, a maintenance run
	ActionProbe    Action = "probe"    // verify
	ActionWatch    Action = "watch"    // verify, the watch period after the last batch
)

// Status is what a phase service reports about a step (saga.StepStatus is
// where the coordinator has the step).
type Status string

// Reported statuses.
const (
	StatusStarted   Status = "started"
	StatusProgress  Status = "progress"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
)

// Final reports whether no further report on the step is expected.
func (s Status) Final() bool { return s == StatusSucceeded || s == StatusFailed }

// ControlOp is an operator's decision on a saga.
type ControlOp string

// Operator decisions.
const (
	OpApprove ControlOp = "approve"
	OpReject  ControlOp = "reject"
	OpCancel  ControlOp = "cancel"
	// OpConfirm: a person confirms for a role (Control.Role).
	OpConfirm ControlOp = "confirm"
)

// StepID names one attempt of one action on one target. It is the command's
// event id and Nats-Msg-Id, and the key under which a service records it.
func StepID(saga string, phase Phase, action Action, target string, attempt int) string {
	return saga + "." + string(phase) + "." + string(action) + "." + target + "." + strconv.Itoa(attempt)
}

// ResultID is the id of a report on a step's first run; n numbers progress
// reports.
func ResultID(step string, status Status, n int) string {
	return RunResultID(step, status, 1, n)
}

// RunResultID is the id of a report on a step's run: a command delivered
// again after its service died (or after an error) runs again, and that
// run's reports must not be taken for duplicates of the first's. The first
// run's ids carry no number, as before runs were counted.
func RunResultID(step string, status Status, run, n int) string {
	id := step + "/" + string(status)
	if run > 1 && (status == StatusStarted || status == StatusProgress) {
		id += "/run-" + strconv.Itoa(run)
	}
	if status == StatusProgress {
		id += "/" + strconv.Itoa(n)
	}
	return id
}

// SagaEventID is the id of the i-th event the coordinator emitted when a saga
// reached sequence number seq.
func SagaEventID(saga string, seq, i int, kind string) string {
	return fmt.Sprintf("%s/%d.%d/%s", saga, seq, i, kind)
}

// Upgrade is what a phase service needs to know of the request behind a
// command. It never carries commands or secrets: those live in the config of
// the service instance that serves the target.
type Upgrade struct {
	Kind        string   `json:"kind"`
	Software    string   `json:"software"`
	From        string   `json:"from,omitempty"`
	To          string   `json:"to,omitempty"`
	Artifact    Artifact `json:"artifact"`
	Environment string   `json:"environment,omitempty"`
	Actions     []string `json:"actions,omitempty"`
	// Analyses selected by the request and the environment's policy, by
	// name: the verify service runs them besides the target's own.
	Analyses []AnalysisRef `json:"analyses,omitempty"`
	// Purge names the purge rules a maintenance run's purge runs (none:
	// every rule of the target).
	Purge []string `json:"purge,omitempty"`
	// Backup is the saga whose backup a restore by hand puts back (the
	// backup service's check and restore of a Maintenance run whose action
	// is restore); empty, and always on a compensation: the command's own
	// saga's backup.
	Backup string `json:"backup,omitempty"`
}

// AnalysisRef selects an analysis the target's configuration declares;
// Threshold, if set, replaces the one in its condition.
type AnalysisRef struct {
	Name      string   `json:"name"`
	Threshold *float64 `json:"threshold,omitempty"`
}

// Artifact is a release package, its digest ("sha256:<hex>") and the URL
// of its detached signature, if any.
type Artifact struct {
	URL       string `json:"url,omitempty"`
	Digest    string `json:"digest,omitempty"`
	Signature string `json:"signature,omitempty"`
}

// Command asks a phase service to perform one step.
type Command struct {
	Step        string    `json:"step"`
	Saga        string    `json:"saga"`
	Phase       Phase     `json:"phase"`
	Action      Action    `json:"action"`
	Target      string    `json:"target"`
	Batch       int       `json:"batch"`
	Attempt     int       `json:"attempt"`
	Deadline    time.Time `json:"deadline"`
	NotAfter    time.Time `json:"notAfter,omitzero"`
	Compensates string    `json:"compensates,omitempty"`
	Upgrade     Upgrade   `json:"upgrade"`
}

// Check implements Checker.
func (c Command) Check() error {
	if err := missing([2]string{"step", c.Step}, [2]string{"saga", c.Saga},
		[2]string{"phase", string(c.Phase)}, [2]string{"action", string(c.Action)},
		[2]string{"target", c.Target}); err != nil {
		return err
	}
	if c.Attempt < 1 {
		return fmt.Errorf("%w: attempt %d", ErrMalformed, c.Attempt)
	}
	return nil
}

// ReportLine is one line of a structured report: a precheck, a verification
// probe. OK is false only for a failure; Status says more (a pass with a
// warning is OK). Lines written before Status existed have none: their
// status is LineStatus().
type ReportLine struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	// Status is pass, warn or fail.
	Status CheckStatus `json:"status,omitempty"`
	// Value is what was measured ("12.1 GiB free"), Threshold what it was
	// held against (">= 100 MiB").
	Value     string `json:"value,omitempty"`
	Threshold string `json:"threshold,omitempty"`
	// Duration is how long the check took.
	Duration time.Duration `json:"durationNs,omitempty"`
}

// CheckStatus is how a report line came out.
type CheckStatus string

// Statuses of a report line.
const (
	CheckPass CheckStatus = "pass"
	CheckWarn CheckStatus = "warn"
	CheckFail CheckStatus = "fail"
)

// LineStatus is the line's status, derived from OK for a line without one.
func (l ReportLine) LineStatus() CheckStatus {
	switch {
	case l.Status != "":
		return l.Status
	case l.OK:
		return CheckPass
	}
	return CheckFail
}

// StepResult is a phase service's report on a step.
type StepResult struct {
	Step    string `json:"step"`
	Saga    string `json:"saga"`
	Phase   Phase  `json:"phase"`
	Action  Action `json:"action"`
	Target  string `json:"target"`
	Attempt int    `json:"attempt"`
	// Run numbers the executions of the step: the delivery of its command
	// that ran it (a delivery answered from the service's record runs
	// nothing). Zero from a service that does not count them.
	Run        int               `json:"run,omitempty"`
	Status     Status            `json:"status"`
	Reason     string            `json:"reason,omitempty"`
	Error      string            `json:"error,omitempty"`
	Message    string            `json:"message,omitempty"`
	Output     map[string]string `json:"output,omitempty"`
	Report     []ReportLine      `json:"report,omitempty"`
	StartedAt  time.Time         `json:"startedAt,omitzero"`
	FinishedAt time.Time         `json:"finishedAt,omitzero"`
}

// Check implements Checker.
func (r StepResult) Check() error {
	if err := missing([2]string{"step", r.Step}, [2]string{"saga", r.Saga},
		[2]string{"phase", string(r.Phase)}, [2]string{"action", string(r.Action)},
		[2]string{"target", r.Target}, [2]string{"status", string(r.Status)}); err != nil {
		return err
	}
	switch r.Status {
	case StatusStarted, StatusProgress, StatusSucceeded, StatusFailed:
		return nil
	}
	return fmt.Errorf("%w: status %q", ErrMalformed, r.Status)
}

// Reasons a phase service gives for a failure it did not even try to avoid.
const (
	ReasonExpired     = "expired"     // the command arrived after its NotAfter
	ReasonUnsupported = "unsupported" // the service cannot perform that action
	ReasonUnknown     = "unknown_target"
	ReasonGaveUp      = "gave_up" // transient errors outlasted every redelivery
	// ReasonUnserved is the coordinator's: no instance announced the
	// target for the phase when its command was due, so it was not sent.
	ReasonUnserved = "unserved"
)

// StepRef points at a step from a saga event.
type StepRef struct {
	ID      string `json:"id"`
	Phase   Phase  `json:"phase"`
	Action  Action `json:"action"`
	Target  string `json:"target"`
	Batch   int    `json:"batch"`
	Attempt int    `json:"attempt"`
	Status  string `json:"status"`
	Error   string `json:"error,omitempty"`
}

// SagaEvent is something the coordinator decided or noticed about a saga.
// Kind is the state entered on a state change, or one of the Kind*
// constants. State is where the saga is at the end of the transition that
// emitted the event: one transition may pass through several states
// (rolling_back then at once rolled_back when nothing is left to undo), and
// each of its events carries the last.
type SagaEvent struct {
	Saga        string   `json:"saga"`
	Kind        string   `json:"kind"`
	State       string   `json:"state"`
	Previous    string   `json:"previous,omitempty"`
	Reason      string   `json:"reason,omitempty"`
	Seq         int      `json:"seq"`
	Name        string   `json:"name,omitempty"`
	RequestKind string   `json:"requestKind,omitempty"` // Upgrade, Install or Maintenance
	DryRun      bool     `json:"dryRun,omitempty"`      // the precheck alone: nothing changes
	Team        string   `json:"team"`
	Teams       []string `json:"teams"`
	Environment string   `json:"environment,omitempty"`
	// Targets are the saga's targets, the first MaxNamedTargets of a
	// fleet; TargetCount is then how many there are (0: Targets names all).
	Targets     []string `json:"targets,omitempty"`
	TargetCount int      `json:"targetCount,omitempty"`
	Software    string   `json:"software"`
	From        string   `json:"from,omitempty"`
	To          string   `json:"to,omitempty"`
	Batch       int      `json:"batch"`
	Batches     int      `json:"batches"`
	Step        *StepRef `json:"step,omitempty"`
	Actor       string   `json:"actor,omitempty"`
	Comment     string   `json:"comment,omitempty"`
	// Role a confirmation is for.
	Role string `json:"role,omitempty"`
	// Audience are teams told of this event beside Teams: an
	// announcement's business teams.
	Audience []string `json:"audience,omitempty"`
	// WindowStart is when the window an announcement names opens; zero
	// if there is none to wait for.
	WindowStart time.Time       `json:"windowStart,omitzero"`
	Request     json.RawMessage `json:"request,omitempty"`
}

// Check implements Checker.
func (e SagaEvent) Check() error {
	return missing([2]string{"saga", e.Saga}, [2]string{"kind", e.Kind}, [2]string{"state", e.State})
}

// Saga event kinds that are not states.
const (
	KindStepFailed = "step_failed" // a step failed or timed out
	KindApproved   = "approved"    // an operator approved; the saga may not move yet
	KindConfirmed  = "confirmed"   // a role confirmed; the saga may not move yet
	// KindAnnouncement tells business teams of the plan before the window.
	KindAnnouncement = "announcement"
	KindIgnored      = "ignored" // an input had no effect (late, duplicate, too late to cancel)
	KindInvalid      = "invalid" // a request was refused before a saga existed
)

// Control is an operator's decision on a saga.
type Control struct {
	ID      string    `json:"id"`
	Saga    string    `json:"saga"`
	Op      ControlOp `json:"op"`
	Actor   string    `json:"actor"`
	Comment string    `json:"comment,omitempty"`
	// Role is the role of a confirmation.
	Role string `json:"role,omitempty"`
}

// Check implements Checker.
func (c Control) Check() error {
	if err := missing([2]string{"id", c.ID}, [2]string{"saga", c.Saga}, [2]string{"op", string(c.Op)}, [2]string{"actor", c.Actor}); err != nil {
		return err
	}
	switch c.Op {
	case OpApprove, OpReject, OpCancel:
		return nil
	case OpConfirm:
		return missing([2]string{"role", c.Role})
	}
	return fmt.Errorf("%w: op %q", ErrMalformed, c.Op)
}

// Timer is a deadline of a saga falling due.
type Timer struct {
	Saga string    `json:"saga"`
	Due  time.Time `json:"due"`
	N    int       `json:"n"`
}

// Check implements Checker.
func (t Timer) Check() error {
	if t.Due.IsZero() {
		return fmt.Errorf("%w: [due]", ErrMissingField)
	}
	return missing([2]string{"saga", t.Saga})
}

// MaxNamedTargets is how many targets a saga event names: a fleet's
// events name the first so many and say how many there are, so that an
// event's size does not grow with the fleet, and a notice stays readable.
const MaxNamedTargets = 50

// Notice is what a team receives.
type Notice struct {
	// ID is the id of the event the notice travels in, set from the
	// envelope by whoever opens it: the same for every delivery of one
	// notice, so a receiver can drop a repeat.
	ID string `json:"-"`
	// Time is the envelope's time, set likewise.
	Time     time.Time `json:"-"`
	Team     string    `json:"team"`
	Saga     string    `json:"saga"`
	Kind     string    `json:"kind"`
	Severity string    `json:"severity"`
	Summary  string    `json:"summary"`
	// Targets are the request's targets, for people to read.
	Targets []string  `json:"targets,omitempty"`
	Event   SagaEvent `json:"event"`
}

// Check implements Checker.
func (n Notice) Check() error {
	return missing([2]string{"team", n.Team}, [2]string{"saga", n.Saga}, [2]string{"kind", n.Kind})
}

// DeadLetter reports a message that a consumer terminated instead of
// processing, with everything needed to inspect or replay it.
type DeadLetter struct {
	Stream     string              `json:"stream"`
	Consumer   string              `json:"consumer"`
	Subject    string              `json:"subject"`
	Sequence   uint64              `json:"sequence"`
	Deliveries uint64              `json:"deliveries"`
	Reason     string              `json:"reason"`
	Error      string              `json:"error"`
	Headers    map[string][]string `json:"headers,omitempty"`
	Payload    []byte              `json:"payload"`
	Truncated  bool                `json:"truncated,omitempty"`
	// Channel is the notify channel that gave up on the message; empty for
	// any other consumer's dead letter.
	Channel string `json:"channel,omitempty"`
}
