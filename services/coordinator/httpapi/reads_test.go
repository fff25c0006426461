package httpapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/testlog"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/httpapi"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

func view(id string, state saga.State, seq int) api.View {
	return api.View{Saga: saga.Saga{ID: id, State: state, Seq: seq}, Revision: 7}
}

func TestListQuery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		query string
		want  sagastore.Filter
	}{
		{"", sagastore.Filter{}},
		{"state=succeeded", sagastore.Filter{States: []saga.State{saga.StateSucceeded}}},
		{"state=awaiting_approval,succeeded", sagastore.Filter{States: []saga.State{saga.StateAwaitingApproval, saga.StateSucceeded}}},
		{"state=awaiting_approval&state=rejected", sagastore.Filter{States: []saga.State{saga.StateAwaitingApproval, saga.StateRejected}}},
		{"state=+verifying+,,", sagastore.Filter{States: []saga.State{saga.StateVerifying}}},
		{"active=true", sagastore.Filter{Active: true}},
		{"active=0", sagastore.Filter{}},
		{"team=dba&environment=staging&software=web", sagastore.Filter{Team: "dba", Environment: "staging", Software: "web"}},
		{"digest=sha256:" + strings.Repeat("c", 64), sagastore.Filter{Digest: "sha256:" + strings.Repeat("c", 64)}},
		{"limit=1", sagastore.Filter{Limit: 1}},
		{"limit=1000&team=platform", sagastore.Filter{Limit: 1000, Team: "platform"}},
		{"since=2026-03-01T10:00:00Z", sagastore.Filter{Since: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			t.Parallel()
			b := newBackend(view("a", saga.StateSucceeded, 6))
			s := newServer(t, b, httpapi.Config{}, quiet)
			var got httpapi.ListReply
			s.get("/v1/sagas?"+tc.query, &got)
			if asked := b.listed(); len(asked) != 1 || !reflect.DeepEqual(asked[0], tc.want) {
				t.Fatalf("asked the backend for %+v, want %+v", asked, tc.want)
			}
			if len(got.Sagas) != 1 || got.Sagas[0].ID != "a" || got.Sagas[0].State != saga.StateSucceeded {
				t.Fatalf("listed %+v", got.Sagas)
			}
		})
	}
}

func TestListRefusesBadQueries(t *testing.T) {
	t.Parallel()
	b := newBackend()
	s := newServer(t, b, httpapi.Config{}, quiet)
	for _, tc := range []struct{ query, says string }{
		{"state=bogus", `state: "bogus" is not a saga state`},
		{"state=succeeded,Succeeded", `state: "Succeeded"`},
		{"limit=abc", `limit: "abc"`},
		{"limit=0", "limit"},
		{"limit=-3", "limit"},
		{"limit=1001", "limit"},
		{"active=maybe", `active: "maybe" is not true or false`},
		{"colour=red", `unknown parameter "colour"`},
		{"team=a&team=b", "team: given 2 times"},
		{"since=24h", `since: "24h" is not an RFC 3339 time`},
	} {
		code, _, body := s.do(http.MethodGet, "/v1/sagas?"+tc.query, "", nil)
		wantError(t, tc.query, code, body, http.StatusBadRequest, "bad request: "+tc.says)
	}
	if n := b.called(); n != 0 {
		t.Fatalf("%d refused listings reached the backend", n)
	}
}

// audit is an entry of a saga's audit log holding ev.
func audit(t *testing.T, dir sagastore.Direction, typ string, at time.Time, ev any) sagastore.Entry {
	t.Helper()
	env, err := events.New(fmt.Sprintf("%s-%d", typ, at.UnixNano()), typ, "test", "s1", 0, at, ev)
	if err != nil {
		t.Fatal(err)
	}
	b, err := events.Encode(env)
	if err != nil {
		t.Fatal(err)
	}
	return sagastore.Entry{ID: string(dir) + "/" + env.ID, Saga: "s1", At: at, Direction: dir, Type: typ, Event: b}
}

// The timeline is the coordinator's saga events out of the audit log, in
// the order of their transitions whatever the order they were logged in;
// an entry that does not decode is left out, and logged.
func TestGetShowsTheTimeline(t *testing.T) {
	t.Parallel()
	b := newBackend(view("s1", saga.StateBackingUp, 4))
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sagaEvent := func(seq int, kind string, at time.Duration) sagastore.Entry {
		ev := events.SagaEvent{Saga: "s1", Kind: kind, State: kind, Seq: seq}
		if kind == "approved" {
			ev.State, ev.Actor, ev.Comment = string(saga.StateBackingUp), "carol", "CAB-42"
		}
		return audit(t, sagastore.Out, events.TypeSaga, t0.Add(at), ev)
	}
	spoilt := sagaEvent(5, "spoilt", 5*time.Second)
	spoilt.Event = []byte(`{"specversion": 7}`)
	b.history["s1"] = []sagastore.Entry{
		audit(t, sagastore.In, events.TypeRequest, t0, map[string]string{"kind": "Upgrade"}),
		sagaEvent(2, "prechecking", 2*time.Second),
		sagaEvent(1, "requested", time.Second),
		audit(t, sagastore.Out, events.TypeCommand, t0.Add(3*time.Second), events.Command{Phase: events.Precheck}),
		sagaEvent(3, "awaiting_approval", 3*time.Second),
		spoilt,
		sagaEvent(4, "approved", 4*time.Second),
	}
	var logs testlog.Buffer
	s := newServer(t, b, httpapi.Config{}, slog.New(slog.NewJSONHandler(&logs, nil)))

	_, _, raw := s.do(http.MethodGet, "/v1/sagas/s1", "", nil)
	var top map[string]json.RawMessage
	decode(t, raw, &top)
	if keys := slices.Sorted(maps.Keys(top)); !slices.Equal(keys, []string{"revision", "saga", "timeline"}) {
		t.Fatalf("keys %v", keys)
	}
	var r httpapi.SagaReply
	decode(t, raw, &r)
	if r.Saga.ID != "s1" || r.Saga.State != saga.StateBackingUp || r.Revision != 7 {
		t.Fatalf("saga %q in %s at revision %d", r.Saga.ID, r.Saga.State, r.Revision)
	}
	if got := kinds(r.Timeline); got != "requested prechecking awaiting_approval approved" {
		t.Fatalf("timeline %s", got)
	}
	for i, it := range r.Timeline {
		if it.Seq != i+1 || !it.At.Equal(t0.Add(time.Duration(i+1)*time.Second)) {
			t.Fatalf("item %d: %+v", i, it)
		}
	}
	if it := r.Timeline[3]; it.Actor != "carol" || it.Comment != "CAB-42" || it.State != string(saga.StateBackingUp) {
		t.Fatalf("approved item %+v", it)
	}
	if !strings.Contains(logs.String(), "left out of the timeline") || !strings.Contains(logs.String(), spoilt.ID) {
		t.Fatalf("the spoilt entry was not logged:\n%s", logs.String())
	}
}

func TestHistory(t *testing.T) {
	t.Parallel()
	b := newBackend(view("s1", saga.StatePrechecking, 2), view("new", saga.StateRequested, 1))
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b.history["s1"] = []sagastore.Entry{
		audit(t, sagastore.In, events.TypeRequest, t0, map[string]string{"kind": "Upgrade"}),
		audit(t, sagastore.Out, events.TypeCommand, t0.Add(time.Second), events.Command{Phase: events.Precheck}),
	}
	s := newServer(t, b, httpapi.Config{}, quiet)
	var h httpapi.HistoryReply
	s.get("/v1/sagas/s1/history", &h)
	if !reflect.DeepEqual(h.Entries, b.history["s1"]) {
		t.Fatalf("entries %+v, want %+v", h.Entries, b.history["s1"])
	}
	// A log with nothing in it is a list, not null.
	if _, _, raw := s.do(http.MethodGet, "/v1/sagas/new/history", "", nil); !strings.Contains(string(raw), `"entries":[]`) {
		t.Fatalf("empty history: %s", raw)
	}
}

func TestUnknownSagasAndBadIDs(t *testing.T) {
	t.Parallel()
	b := newBackend()
	s := newServer(t, b, httpapi.Config{}, quiet)
	for _, p := range []string{"/v1/sagas/no-such-saga", "/v1/sagas/no-such-saga/history"} {
		code, _, body := s.do(http.MethodGet, p, "", nil)
		wantError(t, p, code, body, http.StatusNotFound, "saga not found")
	}
	asked := b.called()
	for _, p := range []string{"/v1/sagas/bad.id", "/v1/sagas/bad*id/history", "/v1/sagas/_x", "/v1/sagas/" + strings.Repeat("x", 65)} {
		code, _, body := s.do(http.MethodGet, p, "", nil)
		wantError(t, p, code, body, http.StatusBadRequest, "saga id")
	}
	if n := b.called() - asked; n != 0 {
		t.Fatalf("%d bad ids reached the backend", n)
	}
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	s := newServer(t, newBackend(view("a", saga.StateSucceeded, 6)), httpapi.Config{Token: token}, quiet)
	code, _, body := s.do(http.MethodGet, "/v2/sagas", "", nil)
	wantError(t, "unknown route", code, body, http.StatusNotFound, "no such route")
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodDelete, "/v1/sagas/a", "GET, HEAD"},
		{http.MethodPost, "/v1/sagas", "GET, HEAD"},
		{http.MethodPut, "/v1/sagas/a/history", "GET, HEAD"},
		{http.MethodGet, "/v1/sagas/a/approve", "POST"},
		{http.MethodDelete, "/v1/sagas/a/cancel", "POST"},
	} {
		code, h, body := s.do(tc.method, tc.path, "", nil)
		wantError(t, tc.method+" "+tc.path, code, body, http.StatusMethodNotAllowed)
		if h.Get("Allow") != tc.allow {
			t.Fatalf("%s %s: Allow %q, want %q", tc.method, tc.path, h.Get("Allow"), tc.allow)
		}
	}
	if code, _, _ := s.do(http.MethodHead, "/v1/sagas/a", "", nil); code != http.StatusOK {
		t.Fatalf("HEAD saga: %d", code)
	}
}

// A backend that fails is a 500 whose cause is logged, not shown.
func TestServerErrorsAreLoggedNotShown(t *testing.T) {
	t.Parallel()
	b := newBackend()
	b.err = errors.New("load saga: nats: connection closed to 10.1.2.3:4222")
	var logs testlog.Buffer
	s := newServer(t, b, httpapi.Config{Token: token}, slog.New(slog.NewJSONHandler(&logs, nil)))
	for _, p := range []string{"/v1/sagas", "/v1/sagas/some-saga", "/v1/sagas/some-saga/history"} {
		code, _, body := s.do(http.MethodGet, p, "", nil)
		wantError(t, p, code, body, http.StatusInternalServerError, api.InternalError)
		if strings.Contains(string(body), "nats") || strings.Contains(string(body), "10.1.2.3") {
			t.Fatalf("%s: the cause leaked: %s", p, body)
		}
	}
	code, _, body := s.post("/v1/sagas/some-saga/approve", bearer, `{"actor":"erin"}`)
	wantError(t, "approve", code, body, http.StatusInternalServerError, api.InternalError)
	var failed int
	for _, l := range logs.JSONLines(t) {
		if l["level"] == "ERROR" && strings.Contains(l["err"].(string), "connection closed to 10.1.2.3") {
			failed++
		}
	}
	if failed < 4 {
		t.Fatalf("%d errors logged with their cause, want at least 4:\n%s", failed, logs.String())
	}
}
