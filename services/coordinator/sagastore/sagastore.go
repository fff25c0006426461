// Package sagastore is the coordinator's storage contract: sagas with
// optimistic concurrency, the outbox of messages each transition must send,
// and the audit log of what the coordinator saw and emitted. Two stores
// implement it: kvstore (JetStream KV, the embedded default) and pgstore
// (PostgreSQL, for production); storetest holds the conformance suite both
// pass.
package sagastore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
)

// Errors every store returns, whatever its driver says.
var (
	ErrNotFound = errors.New("saga not found")
	ErrExists   = errors.New("saga already exists")
	ErrConflict = errors.New("saga changed since it was loaded")
	ErrTooLarge = errors.New("saga too large for this store")
	// ErrUnreadable marks a stored saga that cannot be decoded: written by
	// an incompatible version, or edited by hand.
	ErrUnreadable = errors.New("stored saga cannot be decoded")
)

// UnreadableError names sagas that cannot be decoded. A listing that
// returns it skipped them and holds every other saga, so one bad record
// hides itself, not the rest. errors.Is(err, ErrUnreadable) is true.
type UnreadableError struct {
	IDs []string
	Err error // the first decoding error
}

// Add merges another saga's decoding error into e: err is an
// *UnreadableError; anything else is returned, for the caller to fail on.
func (e *UnreadableError) Add(err error) error {
	var u *UnreadableError
	if !errors.As(err, &u) {
		return err
	}
	e.IDs = append(e.IDs, u.IDs...)
	if e.Err == nil {
		e.Err = u.Err
	}
	return nil
}

// OrNil returns e if it names a saga, nil otherwise.
func (e *UnreadableError) OrNil() error {
	if len(e.IDs) == 0 {
		return nil
	}
	return e
}

func (e *UnreadableError) Error() string {
	return fmt.Sprintf("stored saga %s cannot be decoded: %v", strings.Join(e.IDs, ", "), e.Err)
}

// Is makes errors.Is(err, ErrUnreadable) true.
func (e *UnreadableError) Is(target error) bool { return target == ErrUnreadable }

func (e *UnreadableError) Unwrap() error { return e.Err }

// Skipped splits a listing's error in two: the sagas it skipped because
// they cannot be decoded, with the listing still good for every other, and
// any other error, which leaves the listing unusable.
func Skipped(err error) (ids []string, rest error) {
	var u *UnreadableError
	if errors.As(err, &u) {
		return u.IDs, nil
	}
	return nil, err
}

// Revision is a stored version of a saga; Update succeeds only against the
// revision it was loaded at.
type Revision uint64

// Direction says whether the coordinator saw or emitted an audited event.
type Direction string

// Directions.
const (
	In  Direction = "in"
	Out Direction = "out"
	// Unreadable marks what stood in the log but could not be decoded
	// (anyone may publish on an audit subject): shown, in its place, with
	// why and the stream sequence it has, never fatal to the rest.
	Unreadable Direction = "unreadable"
)

// Entry is one line of a saga's audit log.
type Entry struct {
	// ID is unique in the log: the direction and the event id. Writing an
	// entry twice keeps the first.
	ID        string          `json:"id"`
	Saga      string          `json:"saga"`
	Seq       int             `json:"seq"` // the saga's sequence after the transition; 0 if none
	At        time.Time       `json:"at"`
	Direction Direction       `json:"direction"`
	Type      string          `json:"type"`
	Subject   string          `json:"subject"`
	Note      string          `json:"note,omitempty"` // e.g. why an input changed nothing
	Event     json.RawMessage `json:"event"`          // the CloudEvent
}

// SagaEvent decodes an entry that is one of the coordinator's own saga
// events: ok is false for any other entry, err says why one does not
// decode.
func (e Entry) SagaEvent() (env events.Envelope, ev events.SagaEvent, ok bool, err error) {
	if e.Direction != Out || e.Type != events.TypeSaga {
		return env, ev, false, nil
	}
	env, err = events.Decode(e.Event)
	if err == nil {
		err = events.Open(env, events.TypeSaga, &ev)
	}
	return env, ev, true, err
}

// Change is what one transition writes together with the saga: all of it,
// or none of it.
type Change struct {
	Outbox []bus.Message
	Audit  []Entry
	// Sent are ids of the saga's pending messages already published: an
	// Update marks them sent with the change, as Sent would, so that a
	// flush's mark costs no write of its own when the saga's next input
	// comes soon. Ids not pending are no error.
	Sent []string
}

// Unsent returns pending less the messages the change marks sent, in a
// slice of its own (pending itself is left as it was).
func (ch Change) Unsent(pending []bus.Message) []bus.Message {
	if len(ch.Sent) == 0 {
		return slices.Clip(pending)
	}
	return slices.DeleteFunc(slices.Clone(pending), func(m bus.Message) bool { return slices.Contains(ch.Sent, m.ID) })
}

// Record is a stored saga, its revision and its outbox messages not yet
// marked sent, oldest first.
type Record struct {
	Saga     saga.Saga
	Revision Revision
	Pending  []bus.Message
	// Archived says the saga was read from where a store keeps sagas that
	// ended (the KV store's archive bucket), whose revisions are not the
	// live ones.
	Archived bool
}

// Filter selects sagas to list. Zero fields select everything.
type Filter struct {
	States      []saga.State `json:"states,omitempty"`
	Active      bool         `json:"active,omitempty"` // only sagas not in a terminal state
	Team        string       `json:"team,omitempty"`
	Environment string       `json:"environment,omitempty"`
	Software    string       `json:"software,omitempty"`
	Digest      string       `json:"digest,omitempty"` // artifact digest
	// DueBefore selects sagas waiting for a deadline earlier than this.
	DueBefore time.Time `json:"dueBefore,omitzero"`
	// Since selects sagas created at or after this.
	Since time.Time `json:"since,omitzero"`
	Limit int       `json:"limit,omitempty"` // default 100, newest first
}

// Summary is a saga in a listing.
type Summary struct {
	ID          string     `json:"id"`
	Name        string     `json:"name,omitempty"`
	Kind        string     `json:"kind"`
	Team        string     `json:"team"`
	Environment string     `json:"environment"`
	Software    string     `json:"software"`
	From        string     `json:"from,omitempty"`
	To          string     `json:"to,omitempty"`
	Digest      string     `json:"digest,omitempty"`
	State       saga.State `json:"state"`
	Reason      string     `json:"reason,omitempty"`
	Batch       int        `json:"batch"`
	Batches     int        `json:"batches"`
	Deadline    time.Time  `json:"deadline,omitzero"` // what the saga waits for, if anything
	CreatedAt   time.Time  `json:"createdAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`
}

// Summarize returns a saga's listing line.
func Summarize(s saga.Saga) Summary {
	r := s.Request
	return Summary{
		ID: s.ID, Name: r.Metadata.Name, Kind: string(r.Kind), Team: r.Metadata.Team,
		Environment: r.Metadata.Environment, Software: r.Spec.Software, From: r.Spec.From, To: r.Spec.To,
		Digest: r.Spec.Artifact.Digest, State: s.State, Reason: s.Reason,
		Batch: s.Batch, Batches: len(s.Batches), Deadline: s.Deadline, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt,
	}
}

// Match reports whether a saga passes the filter.
func (f Filter) Match(s Summary) bool {
	if f.Active && s.State.Terminal() {
		return false
	}
	if len(f.States) > 0 {
		found := false
		for _, st := range f.States {
			found = found || st == s.State
		}
		if !found {
			return false
		}
	}
	if !f.DueBefore.IsZero() && (s.Deadline.IsZero() || !s.Deadline.Before(f.DueBefore)) {
		return false
	}
	if !f.Since.IsZero() && s.CreatedAt.Before(f.Since) {
		return false
	}
	return (f.Team == "" || f.Team == s.Team) && (f.Environment == "" || f.Environment == s.Environment) &&
		(f.Software == "" || f.Software == s.Software) && (f.Digest == "" || f.Digest == s.Digest)
}

// DefaultLimit bounds a listing when the filter sets no limit.
const DefaultLimit = 100

// Sized is a store that takes sagas of up to so many targets: one that
// keeps a saga in a message of bounded size (kvstore). The coordinator
// refuses a request for more at once, saying why, rather than fail to
// store its saga. A store that is not Sized takes spec.MaxTargets.
type Sized interface {
	MaxTargets() int
}

// Store keeps sagas. Every implementation passes storetest.Run.
type Store interface {
	// Create stores a new saga with its first change; ErrExists if the id
	// is taken. It returns the saga as stored: its revision, and what it
	// has pending (the change's outbox), so that the caller publishes that
	// without reading the saga again.
	Create(ctx context.Context, s saga.Saga, ch Change) (Record, error)
	// Load returns a saga; ErrNotFound if there is none.
	Load(ctx context.Context, id string) (Record, error)
	// Update stores s and its change if the saga is still at the revision
	// of from, the record s was made from (as Load, Create or Update
	// returned it); ErrConflict otherwise, and nothing is written. It
	// returns the saga as stored, with what it has pending: from's pending
	// messages less the change's Sent, then the change's outbox.
	Update(ctx context.Context, from Record, s saga.Saga, ch Change) (Record, error)
	// Record appends audit entries that change no saga (an ignored input).
	Record(ctx context.Context, entries []Entry) error
	// Sent marks outbox messages of rec's saga as published. rec is the
	// saga as last loaded or stored: a store may write at its revision
	// without reading the saga again, and must read it again if the saga
	// moved on since.
	Sent(ctx context.Context, rec Record, msgIDs []string) error
	// Unsent returns up to limit sagas' unsent outbox messages, oldest
	// first, for the relay.
	Unsent(ctx context.Context, limit int) ([]Record, error)
	// List returns summaries of the sagas that pass the filter, newest
	// first.
	//
	// List and Unsent skip a saga they cannot decode and return every
	// other one, with an *UnreadableError naming what they skipped; Load
	// of such a saga fails with ErrUnreadable.
	List(ctx context.Context, f Filter) ([]Summary, error)
	// History returns a saga's audit log, oldest first.
	History(ctx context.Context, id string) ([]Entry, error)
	// CountActive returns how many sagas not yet ended are in each state
	// (a state with none may be missing). The in-flight gauge calls it at
	// every scrape, so it reads as little as the store allows: no step,
	// no outbox. A saga whose state cannot be read is counted in none and
	// named by an *UnreadableError, as List does.
	CountActive(ctx context.Context) (map[saga.State]int, error)
}
