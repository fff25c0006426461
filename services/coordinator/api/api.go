// Package api is the coordinator's NATS API as its callers see it: the
// subjects, the requests and replies, the errors and the codes that carry
// them, and a client. The coordinator serves it, the CLI calls it, and the
// HTTP API answers with the same types and codes; none of them needs the
// coordinator's engine or its stores to do so.
package api

import (
	"regexp"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// Subjects, answered by every coordinator instance (one queue group).
// Requests and replies are JSON.
const (
	SubjectGet     = "upshift.api.sagas.get"     // IDRequest -> View
	SubjectList    = "upshift.api.sagas.list"    // sagastore.Filter -> ListReply
	SubjectHistory = "upshift.api.sagas.history" // IDRequest -> []sagastore.Entry
	SubjectControl = "upshift.api.sagas.control" // ControlRequest -> ControlReply
	SubjectTargets = "upshift.api.targets.list"  // TargetsRequest -> fleet.Listing
)

// TargetsRequest asks for the registry of targets, those a selector
// ("role=web,zone!=dmz") chooses if it is set.
type TargetsRequest struct {
	Selector string `json:"selector,omitempty"`
}

// View is a saga as the API shows it.
type View struct {
	Saga     saga.Saga          `json:"saga"`
	Revision sagastore.Revision `json:"revision"`
	// Pending counts the outbox messages not yet marked sent: those
	// published are marked with the saga's next change, or alone half a
	// second later (coordinator.DefaultMarkDelay; at once if the saga
	// ended), so a saga just moved shows some for that long.
	Pending int `json:"pendingMessages"`
}

// IDRequest names a saga.
type IDRequest struct {
	ID string `json:"id"`
}

// ListReply is a listing: the sagas that pass the filter, newest first,
// and the ids of stored sagas skipped because they cannot be decoded (a
// KV store names them whatever the filter, as it cannot tell).
type ListReply struct {
	Sagas      []sagastore.Summary `json:"sagas"`
	Unreadable []string            `json:"unreadable,omitempty"`
}

// ControlRequest is an operator's decision.
type ControlRequest struct {
	ID      string           `json:"id"`
	Op      events.ControlOp `json:"op"`
	Actor   string           `json:"actor"`
	Comment string           `json:"comment,omitempty"`
	// Role is the role a confirmation (op confirm) is for.
	Role string `json:"role,omitempty"`
}

// ControlReply says the decision was accepted for the saga; the saga acts
// on it asynchronously, and its events tell what came of it.
type ControlReply struct {
	Accepted bool   `json:"accepted"`
	Control  string `json:"control"` // the id of the published decision
	State    string `json:"state"`   // the saga's state when accepted
}

// idRE bounds saga ids: they become subject tokens and store keys.
var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// ValidID reports whether id can name a saga: letters, digits, '_' and '-',
// at most 64, starting with a letter or digit, as saga ids become subject
// tokens and store keys.
func ValidID(id string) bool { return idRE.MatchString(id) }
