package httpapi_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/httpapi"
)

// POST /v1/sagas/{id}/confirm takes {"role", "by", "comment"} and asks the
// backend for a confirmation of that role; a bad body reaches nothing.
func TestConfirmRoute(t *testing.T) {
	t.Parallel()
	b := newBackend(view("w1", saga.StateAwaitingConfirmation, 3))
	s := newServer(t, b, httpapi.Config{Token: token}, quiet)
	code, _, body := s.post("/v1/sagas/w1/confirm", bearer, `{"role":"dba","by":"dora","comment":"on call"}`)
	accepted(t, "confirm", code, body)
	want := []api.ControlRequest{{ID: "w1", Op: events.OpConfirm, Actor: "dora", Comment: "on call", Role: "dba"}}
	if got := b.decisions(); !slices.Equal(got, want) {
		t.Fatalf("the backend was asked %+v, want %+v", got, want)
	}
	for _, tc := range []struct{ body, says string }{
		{"", `want {"role": "dba", "by": "...", "comment": "..."}`},
		{`{"by":"dora"}`, "role is required"},
		{`{"role":"dba"}`, "by is required"},
		{`{}`, "role is required; by is required"},
		{`{"role":"dba","actor":"dora"}`, `unknown field "actor"`},
	} {
		code, _, got := s.post("/v1/sagas/w1/confirm", bearer, tc.body)
		wantError(t, "body "+tc.body, code, got, http.StatusBadRequest, tc.says)
	}
	if n := len(b.decisions()); n != 1 {
		t.Fatalf("%d decisions reached the backend, want 1", n)
	}
}

// Confirming is a role of its own: a confirm token confirms and does
// nothing else; an approver or an operator cannot confirm.
func TestConfirmNeedsTheConfirmRole(t *testing.T) {
	t.Parallel()
	b := newBackend(view("w1", saga.StateAwaitingConfirmation, 3))
	tokens := append(loadTokens(t), httpapi.Token{Name: "dora", SHA256: hashOf("tok-dora"), Roles: []httpapi.Role{httpapi.RoleConfirm}})
	s := newServer(t, b, httpapi.Config{Tokens: tokens}, quiet)
	for _, name := range []string{"alice", "oscar", "rita"} {
		code, _, body := s.post("/v1/sagas/w1/confirm", "Bearer "+named[name], `{"role":"dba"}`)
		wantError(t, "confirm as "+name, code, body, http.StatusForbidden, "lacks the confirm role")
	}
	code, _, body := s.post("/v1/sagas/w1/approve", "Bearer tok-dora", `{}`)
	wantError(t, "approve as dora", code, body, http.StatusForbidden, "lacks the approve role")
	code, _, body = s.post("/v1/sagas/w1/confirm", "Bearer tok-dora", `{"role":"dba"}`)
	accepted(t, "confirm as dora", code, body)
	code, _, body = s.post("/v1/sagas/w1/confirm", "Bearer tok-dora", `{"role":"dba","by":"someone-else"}`)
	wantError(t, "confirm for someone else", code, body, http.StatusForbidden)
	if got := b.decisions(); len(got) != 1 || got[0].Actor != "dora" || got[0].Role != "dba" {
		t.Fatalf("decisions %+v", got)
	}
}

// Over a real coordinator: the saga waits for its roles, a role it does
// not ask for is a 400, a second confirmation of a role a 409, and the
// last one lets it go on; the timeline shows who confirmed what.
func TestConfirmOverTheCoordinator(t *testing.T) {
	w := newWorld(t, nil)
	s := &client{t: t, url: "http://" + w.http}
	req := request("platform", "test", "app")
	req.Spec.Confirm = &spec.Confirm{Roles: []string{"dev", "dba"}}
	id := w.submit(req)
	s.waitFor(id, natstest.Patience, saga.StateAwaitingConfirmation)

	code, _, body := s.post("/v1/sagas/"+id+"/confirm", bearer, `{"role":"dba","by":"dora","comment":"on call"}`)
	accepted(t, "confirm dba", code, body)
	natstest.Eventually(t, natstest.Patience, "dba confirmed", func() bool {
		var r httpapi.SagaReply
		s.get("/v1/sagas/"+id, &r)
		return len(r.Saga.Confirmations) == 1
	})
	code, _, body = s.post("/v1/sagas/"+id+"/confirm", bearer, `{"role":"dba","by":"dora"}`)
	wantError(t, "confirm dba again", code, body, http.StatusConflict, "role dba already confirmed by dora")
	code, _, body = s.post("/v1/sagas/"+id+"/confirm", bearer, `{"role":"qa","by":"quinn"}`)
	wantError(t, "confirm qa", code, body, http.StatusBadRequest, `role "qa"`, "asks dev, dba to confirm")
	code, _, body = s.post("/v1/sagas/"+id+"/confirm", bearer, `{"role":"dev","by":"dev-1"}`)
	accepted(t, "confirm dev", code, body)

	end := s.waitFor(id, natstest.Patience, saga.StateSucceeded)
	if got := kinds(end.Timeline); !strings.HasPrefix(got, "requested prechecking awaiting_confirmation confirmed confirmed backing_up") {
		t.Fatalf("timeline %s", got)
	}
	if item := end.Timeline[3]; item.Role != "dba" || item.Actor != "dora" || item.Comment != "on call" {
		t.Fatalf("confirmed item %+v", item)
	}
	if c := end.Saga.Confirmations; len(c) != 2 || c[0].Role != "dba" || c[1].By != "dev-1" {
		t.Fatalf("confirmations %+v", c)
	}
}
