package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// ListReply answers GET /v1/sagas.
type ListReply = api.ListReply

// SagaReply answers GET /v1/sagas/{id}.
type SagaReply struct {
	Saga     saga.Saga          `json:"saga"`
	Revision sagastore.Revision `json:"revision"`
	Timeline []TimelineItem     `json:"timeline"`
}

// TimelineItem is one of the coordinator's events about a saga.
type TimelineItem struct {
	At      time.Time       `json:"at"`
	Seq     int             `json:"seq"`
	Kind    string          `json:"kind"`
	State   string          `json:"state"`
	Reason  string          `json:"reason,omitempty"`
	Actor   string          `json:"actor,omitempty"`
	Comment string          `json:"comment,omitempty"`
	Role    string          `json:"role,omitempty"` // of a confirmation
	Step    *events.StepRef `json:"step,omitempty"`
}

// HistoryReply answers GET /v1/sagas/{id}/history.
type HistoryReply struct {
	Entries []sagastore.Entry `json:"entries"`
}

// MaxLimit bounds the limit parameter of a listing.
const MaxLimit = 1000

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	reply, err := s.b.List(ctx, f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, reply)
}

// parseFilter reads the listing's query. Unknown or repeated parameters
// are refused rather than ignored: a misspelt filter would otherwise list
// everything and look like an answer.
func parseFilter(q url.Values) (sagastore.Filter, error) {
	var f sagastore.Filter
	for name, vals := range q {
		switch name {
		case "state":
			for _, v := range vals {
				for st := range strings.SplitSeq(v, ",") {
					st = strings.TrimSpace(st)
					if st == "" {
						continue
					}
					if !slices.Contains(saga.States, saga.State(st)) {
						return f, badRequest("state: %q is not a saga state (%s)", st, stateNames())
					}
					f.States = append(f.States, saga.State(st))
				}
			}
			continue
		case "team", "environment", "software", "digest", "active", "limit", "since":
		default:
			return f, badRequest("unknown parameter %q: state, team, environment, software, digest, active, limit, since", name)
		}
		if len(vals) > 1 {
			return f, badRequest("%s: given %d times, once is allowed", name, len(vals))
		}
		v := vals[0]
		switch name {
		case "team":
			f.Team = v
		case "environment":
			f.Environment = v
		case "software":
			f.Software = v
		case "digest":
			f.Digest = v
		case "active":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return f, badRequest("active: %q is not true or false", v)
			}
			f.Active = b
		case "since":
			at, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, badRequest("since: %q is not an RFC 3339 time (2006-01-02T15:04:05Z)", v)
			}
			f.Since = at
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxLimit {
				return f, badRequest("limit: %q is not a whole number from 1 to %d", v, MaxLimit)
			}
			f.Limit = n
		}
	}
	return f, nil
}

func stateNames() string {
	names := make([]string, len(saga.States))
	for i, st := range saga.States {
		names[i] = string(st)
	}
	return strings.Join(names, ", ")
}

func (s *server) get(w http.ResponseWriter, r *http.Request) {
	id, err := sagaID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	v, err := s.b.Get(ctx, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Read after the saga, so the timeline is at least as recent as it.
	hist, err := s.b.History(ctx, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, SagaReply{Saga: v.Saga, Revision: v.Revision, Timeline: s.timeline(ctx, id, hist)})
}

func (s *server) history(w http.ResponseWriter, r *http.Request) {
	id, err := sagaID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	hist, err := s.b.History(ctx, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if hist == nil {
		hist = []sagastore.Entry{}
	}
	writeJSON(w, http.StatusOK, HistoryReply{Entries: hist})
}

// timeline picks the coordinator's own saga events out of the audit log,
// oldest first. An entry that does not decode is logged and left out: one
// bad line must not hide the saga from a dashboard.
func (s *server) timeline(ctx context.Context, id string, hist []sagastore.Entry) []TimelineItem {
	out := []TimelineItem{}
	for _, e := range hist {
		env, ev, ok, err := e.SagaEvent()
		if !ok {
			continue
		}
		if err != nil {
			s.log.WarnContext(ctx, "audit entry left out of the timeline", "saga", id, "entry", e.ID, "err", err)
			continue
		}
		out = append(out, TimelineItem{At: env.Time, Seq: ev.Seq, Kind: ev.Kind, State: ev.State,
			Reason: ev.Reason, Actor: ev.Actor, Comment: ev.Comment, Role: ev.Role, Step: ev.Step})
	}
	// The log is in the order entries were published; transitions are
	// numbered, so make "oldest first" hold whatever the publishing order.
	slices.SortStableFunc(out, func(a, b TimelineItem) int { return a.Seq - b.Seq })
	return out
}

func sagaID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !api.ValidID(id) {
		return "", badRequest("saga id %q: letters, digits, '_' and '-', at most 64", id)
	}
	return id, nil
}

// targets answers GET /v1/targets?selector=role%3Dweb: the registry of
// targets, those the selector chooses if it is given.
func (s *server) targets(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	reply, err := s.b.Targets(ctx, r.URL.Query().Get("selector"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, reply)
}
