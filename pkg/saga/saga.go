// Package saga is the upgrade saga as a pure state machine: given a saga and
// an input (a report from a phase service, time passing, an operator's
// decision) it returns the next saga and what must happen because of it (the
// commands to send, the events to publish, when to be woken). It does no I/O
// and reads no clock, so every transition is a table test away.
//
//	requested -> prechecking -> checked (a dry run)
//	requested -> prechecking -> [awaiting confirmation] -> [awaiting approval] -> [awaiting window]
//	          -> backing up -> deploying (batch 1..n) <-> verifying (batch 1..n) -> [watching] -> succeeded
//	failure or timeout in precheck/backup, no confirmation or approval in time, reject,
//	cancel before deploy -> failed | rejected | cancelled
//	failure or timeout in deploy/verify/watch, or cancel -> rolling back: compensate newest first,
//	                                                  one step at a time -> rolled back | rollback failed
//
// Confirmations come before the approval: the people who must be on hand
// (dev, qa, ops, dba...) say so first, and the approver decides with that
// known, as a change board gives its go last. Both come before the window
// wait, so the backup starts when the window opens rather than when the
// last person answers, and the window is not spent waiting. Confirmations
// and an approval sent early (while the precheck runs) are recorded and
// count when the saga gets there. An announcement, if asked for, goes out
// once, a set time before the window opens (at once with no window, or
// one already open), planned when the precheck passed.
package saga

import (
	"slices"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/spec"
)

// State is where a saga is.
type State string

// The states of a saga.
const (
	StateRequested        State = "requested"
	StatePrechecking      State = "prechecking"
	StateAwaitingApproval State = "awaiting_approval"
	// StateAwaitingConfirmation waits until every role named by the
	// request and the environment has confirmed (Saga.Confirmations).
	StateAwaitingConfirmation State = "awaiting_confirmation"
	StateAwaitingWindow       State = "awaiting_window"
	StateBackingUp            State = "backing_up"
	StateDeploying            State = "deploying"
	StateVerifying            State = "verifying"
	// StateWatching follows the last batch's verification when a watch
	// period is asked for: every target is watched until it ends, and a
	// failure still rolls every batch back.
	StateWatching       State = "watching"
	StateRollingBack    State = "rolling_back"
	StateSucceeded      State = "succeeded"
	StateFailed         State = "failed"
	StateRejected       State = "rejected"
	StateCancelled      State = "cancelled"
	StateRolledBack     State = "rolled_back"
	StateRollbackFailed State = "rollback_failed"
	// StateChecked ends a dry run whose checks all passed.
	StateChecked State = "checked"
)

// States lists every state, in roughly the order a saga meets them.
var States = []State{StateRequested, StatePrechecking, StateAwaitingConfirmation, StateAwaitingApproval, StateAwaitingWindow, StateBackingUp,
	StateDeploying, StateVerifying, StateWatching, StateRollingBack, StateSucceeded, StateFailed, StateRejected, StateCancelled, StateRolledBack, StateRollbackFailed, StateChecked}

// Terminal reports whether the saga is over.
func (s State) Terminal() bool {
	switch s {
	case StateSucceeded, StateFailed, StateRejected, StateCancelled, StateRolledBack, StateRollbackFailed, StateChecked:
		return true
	}
	return false
}

// StepStatus is where a step is, as the coordinator sees it.
type StepStatus string

// Step statuses.
const (
	StepDispatched StepStatus = "dispatched"
	StepRunning    StepStatus = "running"
	StepSucceeded  StepStatus = "succeeded"
	StepFailed     StepStatus = "failed"
	StepTimedOut   StepStatus = "timed_out"
)

// Final reports whether the step's outcome is settled for the saga.
func (s StepStatus) Final() bool {
	return s == StepSucceeded || s == StepFailed || s == StepTimedOut
}

// Step is one command sent to a phase service and what became of it.
type Step struct {
	ID           string              `json:"id"`
	Phase        events.Phase        `json:"phase"`
	Action       events.Action       `json:"action"`
	Target       string              `json:"target"`
	Batch        int                 `json:"batch"`
	Attempt      int                 `json:"attempt"`
	Status       StepStatus          `json:"status"`
	Compensates  string              `json:"compensates,omitempty"`
	DispatchedAt time.Time           `json:"dispatchedAt"`
	Deadline     time.Time           `json:"deadline"`
	StartedAt    time.Time           `json:"startedAt,omitzero"`
	HeartbeatAt  time.Time           `json:"heartbeatAt,omitzero"` // when the last progress was sent
	FinishedAt   time.Time           `json:"finishedAt,omitzero"`
	Reason       string              `json:"reason,omitempty"`
	Error        string              `json:"error,omitempty"`
	Output       map[string]string   `json:"output,omitempty"`
	Report       []events.ReportLine `json:"report,omitempty"`
	Done         int                 `json:"done,omitempty"`     // order in which steps became final
	Late         events.Status       `json:"late,omitempty"`     // a result that came after a time-out
	Progress     string              `json:"progress,omitempty"` // the last progress message
	// Runs are the step's executions, from the service's reports, once it
	// ran more than once (its command delivered again after its service
	// died or after an error); the step's outcome is the last run's.
	Runs []Run `json:"runs,omitempty"`
	// Run is the number of the run in progress or last finished (0: not
	// started, or reported by a service that does not number its runs).
	Run int `json:"run,omitempty"`
}

// Run is one execution of a step by its phase service.
type Run struct {
	// N is the delivery of the command that ran it.
	N         int       `json:"n"`
	StartedAt time.Time `json:"startedAt"`
	// Progress is the run's last message; for a run that ended in an error
	// and was tried again, that error.
	Progress string `json:"progress,omitempty"`
}

// Executions is how many times the step ran, as far as its reports tell:
// at least once if it started.
func (st Step) Executions() int {
	if len(st.Runs) > 0 {
		return len(st.Runs)
	}
	if st.StartedAt.IsZero() {
		return 0
	}
	return 1
}

// Decision is an operator's approval, rejection or cancellation.
type Decision struct {
	Actor   string    `json:"actor"`
	Comment string    `json:"comment,omitempty"`
	At      time.Time `json:"at"`
}

// Confirmation is one role's confirmation that its people are on hand.
type Confirmation struct {
	Role    string    `json:"role"`
	By      string    `json:"by"`
	Comment string    `json:"comment,omitempty"`
	At      time.Time `json:"at"`
}

// Options are the coordinator's policies for one saga, fixed at creation.
type Options struct {
	// RequireApproval holds the saga before backup until an operator
	// approves it.
	RequireApproval bool `json:"requireApproval,omitempty"`
	// ApprovalTimeout fails the saga if no decision comes in time.
	ApprovalTimeout time.Duration `json:"approvalTimeout,omitempty"`
	// Windows of the environment; the request's windows, if any, must be
	// open too.
	Windows []spec.Window `json:"windows,omitempty"`
	// Verify of the environment: a watch period, and analyses every
	// verification runs (see Saga.Analyses).
	Verify spec.Verify `json:"verify,omitzero"`
	// Confirm of the environment; New merges the request's into it: the
	// roles of both, the request's timeout if it sets one, else the
	// environment's, else DefaultConfirmTimeout.
	Confirm spec.Confirm `json:"confirm,omitzero"`
	// Announce of the environment; New merges the request's into it: the
	// teams of both, the earlier of the two announcement times.
	Announce spec.Announce `json:"announce,omitzero"`
}

// Saga is one upgrade or maintenance run.
type Saga struct {
	ID        string       `json:"id"`
	Request   spec.Request `json:"request"`
	Options   Options      `json:"options"`
	State     State        `json:"state"`
	EnteredAt time.Time    `json:"enteredAt"` // when it entered State
	Previous  State        `json:"previous,omitempty"`
	Reason    string       `json:"reason,omitempty"`
	Batches   [][]string   `json:"batches"`
	Batch     int          `json:"batch"`
	// Steps in the order they were dispatched. A saga returned by Apply
	// shares the steps it did not change with the saga it was given:
	// read them, never change them in place.
	Steps []*Step `json:"steps"`
	// Since is the index in Steps of the first step the saga may be
	// waiting for: those before it belong to phases or batches done.
	// The machine reads only from there, so a transition does not grow
	// with the steps of the batches before it (zero: from the start).
	Since    int       `json:"since,omitempty"`
	Deadline time.Time `json:"deadline,omitzero"`
	// SetAside are the targets that failed within their batch's tolerance
	// (spec.Rollout.MaxFailedPercent), rolled back alone and left out of
	// the rest of the saga.
	SetAside  []string  `json:"setAside,omitempty"`
	Plan      []string  `json:"plan,omitempty"` // ids of the steps to compensate, in order
	Next      int       `json:"next,omitempty"` // index in Plan of the compensation in flight
	Approval  *Decision `json:"approval,omitempty"`
	Rejection *Decision `json:"rejection,omitempty"`
	Cancel    *Decision `json:"cancel,omitempty"`
	// Confirmations received, in order.
	Confirmations []Confirmation `json:"confirmations,omitempty"`
	// AnnounceAt is when a planned announcement is due; zero once sent
	// or if none is planned.
	AnnounceAt time.Time `json:"announceAt,omitzero"`
	// AnnouncedAt is when the announcement went out.
	AnnouncedAt time.Time `json:"announcedAt,omitzero"`
	Seq         int       `json:"seq"`      // inputs applied
	Finished    int       `json:"finished"` // steps that became final
	Wakes       int       `json:"wakes"`    // wake-ups requested
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// New returns a saga for a validated request, in state requested. A
// request may ask for an approval whatever the policy says.
func New(id string, req spec.Request, opts Options, at time.Time) Saga {
	opts.RequireApproval = opts.RequireApproval || req.Spec.Approval.Required
	if opts.RequireApproval && opts.ApprovalTimeout <= 0 {
		opts.ApprovalTimeout = DefaultApprovalTimeout
	}
	if c := req.Spec.Confirm; c != nil {
		opts.Confirm.Roles = union(opts.Confirm.Roles, c.Roles)
		if c.Timeout.Duration > 0 {
			opts.Confirm.Timeout = c.Timeout
		}
	}
	if len(opts.Confirm.Roles) > 0 && opts.Confirm.Timeout.Duration <= 0 {
		opts.Confirm.Timeout.Duration = DefaultConfirmTimeout
	}
	if a := req.Spec.Announce; a != nil {
		opts.Announce.Teams = union(opts.Announce.Teams, a.Teams)
		opts.Announce.Before.Duration = max(opts.Announce.Before.Duration, a.Before.Duration)
	}
	return Saga{
		ID: id, Request: req, Options: opts, State: StateRequested, EnteredAt: at.UTC(),
		Batches: req.Batches(), CreatedAt: at.UTC(), UpdatedAt: at.UTC(),
	}
}

// DefaultApprovalTimeout is how long a saga waits for an approval by default.
const DefaultApprovalTimeout = 24 * time.Hour

// DefaultConfirmTimeout is how long a saga waits for its confirmations by
// default.
const DefaultConfirmTimeout = 24 * time.Hour

// union returns a's names, then b's that a lacks, in order, in a new slice.
func union(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Unconfirmed lists the roles that must still confirm, in order.
func (s Saga) Unconfirmed() []string {
	var out []string
	for _, r := range s.Options.Confirm.Roles {
		if _, ok := s.Confirmed(r); !ok {
			out = append(out, r)
		}
	}
	return out
}

// Confirmed returns the confirmation of a role, if there is one.
func (s Saga) Confirmed(role string) (Confirmation, bool) {
	for _, c := range s.Confirmations {
		if c.Role == role {
			return c, true
		}
	}
	return Confirmation{}, false
}

// Step returns the step with the given id, to read: it may be shared with
// other sagas. It looks from the newest step back, as the steps a saga
// hears of are mostly the newest.
func (s *Saga) Step(id string) (*Step, bool) {
	if i := s.find(id); i >= 0 {
		return s.Steps[i], true
	}
	return nil, false
}

// find returns the index of the step with the given id, or -1.
func (s *Saga) find(id string) int {
	for i := len(s.Steps) - 1; i >= 0; i-- {
		if s.Steps[i].ID == id {
			return i
		}
	}
	return -1
}

// Watch is the watch period after the last batch: the longer of the
// request's and the environment's, so a request cannot shorten what its
// environment asks for.
func (s Saga) Watch() time.Duration {
	return max(s.Request.Spec.Verify.Watch.Duration, s.Options.Verify.Watch.Duration)
}

// WatchEnds is when the watch period ends, for a saga that is watching;
// zero otherwise. The state's deadline comes WatchGrace later.
func (s Saga) WatchEnds() time.Time {
	if s.State != StateWatching {
		return time.Time{}
	}
	return s.EnteredAt.Add(s.Watch())
}

// Analyses are the analyses every verification of the saga selects: the
// environment's, then the request's others. For one both select, the
// environment's threshold wins if it sets one: its operators decide.
func (s Saga) Analyses() []events.AnalysisRef {
	var out []events.AnalysisRef
	add := func(a spec.AnalysisRef, prefer bool) {
		for i := range out {
			if out[i].Name == a.Name {
				if out[i].Threshold == nil || prefer && a.Threshold != nil {
					out[i].Threshold = a.Threshold
				}
				return
			}
		}
		out = append(out, events.AnalysisRef{Name: a.Name, Threshold: a.Threshold})
	}
	for _, a := range s.Options.Verify.Analyses {
		add(a, true)
	}
	for _, a := range s.Request.Spec.Verify.Analyses {
		add(a, false)
	}
	return out
}

// clone returns a saga the machine may change without changing s: lists
// copied, except the steps, shared and clipped, so that appending one
// copies the list and changing one goes through machine.edit, and the
// roll-back plan, shared: the machine only ever replaces it whole (a store
// then sees an unchanged plan as the same list).
func (s Saga) clone() Saga {
	s.Steps = slices.Clip(s.Steps)
	s.Plan = slices.Clip(s.Plan)
	s.SetAside = slices.Clone(s.SetAside)
	s.Confirmations = append([]Confirmation(nil), s.Confirmations...)
	return s
}
