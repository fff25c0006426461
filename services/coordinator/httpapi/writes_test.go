package httpapi_test

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/testlog"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/httpapi"
)

func TestDecisions(t *testing.T) {
	t.Parallel()
	b := newBackend(view("w1", saga.StateAwaitingApproval, 3), view("v1", saga.StateVerifying, 6), view("done", saga.StateSucceeded, 6))
	s := newServer(t, b, httpapi.Config{Token: token}, quiet)
	var want []api.ControlRequest
	for _, tc := range []struct {
		id   string
		op   events.ControlOp
		body string
		req  api.ControlRequest
	}{
		{"w1", events.OpApprove, `{"actor":"carol","comment":"CAB-42"}`, api.ControlRequest{ID: "w1", Op: events.OpApprove, Actor: "carol", Comment: "CAB-42"}},
		{"w1", events.OpReject, `{"actor":"dave"}`, api.ControlRequest{ID: "w1", Op: events.OpReject, Actor: "dave"}},
		{"v1", events.OpCancel, `{"comment":"hung probe","actor":"erin"}`, api.ControlRequest{ID: "v1", Op: events.OpCancel, Actor: "erin", Comment: "hung probe"}},
	} {
		what := string(tc.op) + " " + tc.id
		code, _, body := s.post("/v1/sagas/"+tc.id+"/"+string(tc.op), bearer, tc.body)
		if r := accepted(t, what, code, body); r.State != string(b.sagas[tc.id].Saga.State) {
			t.Fatalf("%s: accepted in state %s", what, r.State)
		}
		want = append(want, tc.req)
	}
	if got := b.decisions(); !slices.Equal(got, want) {
		t.Fatalf("the backend was asked %+v, want %+v", got, want)
	}
	code, _, body := s.post("/v1/sagas/no-such-saga/approve", bearer, `{"actor":"carol"}`)
	wantError(t, "approve unknown", code, body, http.StatusNotFound, "saga not found")
	code, _, body = s.post("/v1/sagas/done/cancel", bearer, `{"actor":"carol"}`)
	wantError(t, "cancel a finished saga", code, body, http.StatusConflict, "decision no longer possible: saga is succeeded")
}

func TestDecisionsNeedTheToken(t *testing.T) {
	t.Parallel()
	b := newBackend(view("w1", saga.StateAwaitingApproval, 3))
	s := newServer(t, b, httpapi.Config{Token: token}, quiet)
	readOnly := newServer(t, b, httpapi.Config{}, quiet)
	path, body := "/v1/sagas/w1/approve", `{"actor":"mallory"}`
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + token + "x", "Basic " + token, "Bearer", "Bearer  ", token} {
		code, h, b := s.post(path, auth, body)
		wantError(t, "Authorization "+auth, code, b, http.StatusUnauthorized)
		if !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("Authorization %q: WWW-Authenticate %q", auth, h.Get("WWW-Authenticate"))
		}
	}
	code, _, got := readOnly.post(path, bearer, body)
	wantError(t, "no token configured", code, got, http.StatusForbidden, "writes are disabled: no API token configured")
	if n := b.called(); n != 0 {
		t.Fatalf("%d unauthorized decisions reached the backend", n)
	}
	// Reads need no token on either.
	readOnly.get("/v1/sagas/w1", &httpapi.SagaReply{})
	s.get("/v1/sagas/w1", &httpapi.SagaReply{})
	// The scheme is not case-sensitive.
	code, _, got = s.post(path, "bearer "+token, body)
	accepted(t, "lower-case scheme", code, got)
}

func TestDecisionsRefuseBadBodies(t *testing.T) {
	t.Parallel()
	b := newBackend(view("w1", saga.StateAwaitingApproval, 3))
	s := newServer(t, b, httpapi.Config{Token: token}, quiet)
	small := newServer(t, b, httpapi.Config{Token: token, MaxBody: 128}, quiet)
	path := "/v1/sagas/w1/approve"
	for _, tc := range []struct{ body, says string }{
		{"", "body: empty"},
		{"{", "body:"},
		{"[1]", "body:"},
		{`{"actor":"x","extra":1}`, `unknown field "extra"`},
		{`{"actor":7}`, "body:"},
		{`{"comment":"c"}`, "actor is required"},
		{`{"actor":"  "}`, "actor is required"},
		{`{"actor":"x"}{"actor":"y"}`, "more than one JSON value"},
	} {
		code, _, got := s.post(path, bearer, tc.body)
		wantError(t, "body "+tc.body, code, got, http.StatusBadRequest, tc.says)
	}
	big := `{"actor":"x","comment":"` + strings.Repeat("y", 200) + `"}`
	code, _, got := small.post(path, bearer, big)
	wantError(t, "oversize body", code, got, http.StatusBadRequest, "larger than 128 bytes")
	code, _, got = s.post("/v1/sagas/bad.id/approve", bearer, `{"actor":"x"}`)
	wantError(t, "bad id", code, got, http.StatusBadRequest, "saga id")
	if n := b.called(); n != 0 {
		t.Fatalf("%d refused decisions reached the backend", n)
	}
}

// Every write is logged, whatever came of it, with who asked what of which
// saga, and never with the token.
func TestWritesAreLoggedWithoutTheToken(t *testing.T) {
	t.Parallel()
	b := newBackend(view("w1", saga.StateAwaitingApproval, 3), view("done", saga.StateSucceeded, 6))
	var logs testlog.Buffer
	s := newServer(t, b, httpapi.Config{Token: token}, slog.New(slog.NewJSONHandler(&logs, nil)))
	s.post("/v1/sagas/w1/approve", bearer, `{"actor":"carol"}`)
	s.post("/v1/sagas/w1/approve", "Bearer wrong", `{"actor":"mallory"}`)
	s.post("/v1/sagas/w1/reject", bearer, `{"actor":""}`)
	s.post("/v1/sagas/no-such-saga/approve", bearer, `{"actor":"carol"}`)
	s.post("/v1/sagas/done/cancel", bearer, `{"actor":"erin"}`)
	got := map[string]bool{}
	for _, l := range logs.JSONLines(t) {
		if l["msg"] != "saga decision" {
			continue
		}
		for _, k := range []string{"method", "path", "saga", "actor", "outcome", "status"} {
			if _, ok := l[k]; !ok {
				t.Fatalf("log line without %s: %v", k, l)
			}
		}
		got[l["outcome"].(string)+" "+l["actor"].(string)+" "+l["method"].(string)+" "+l["path"].(string)] = true
	}
	for _, want := range []string{
		"accepted carol POST /v1/sagas/w1/approve",
		"unauthorized  POST /v1/sagas/w1/approve",
		"bad_request  POST /v1/sagas/w1/reject",
		"not_found carol POST /v1/sagas/no-such-saga/approve",
		"too_late erin POST /v1/sagas/done/cancel",
	} {
		if !got[want] {
			t.Errorf("no log line %q in %v", want, got)
		}
	}
	if strings.Contains(logs.String(), token) {
		t.Fatalf("the token is in the log:\n%s", logs.String())
	}
}
