package httpapi_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/httpapi"
)

const bearer = "Bearer " + token

// accepted checks a 202 and returns the reply.
func accepted(t *testing.T, what string, code int, b []byte) coordinator.ControlReply {
	t.Helper()
	var r coordinator.ControlReply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v: %s", what, err, b)
	}
	if code != http.StatusAccepted || !r.Accepted || r.Control == "" {
		t.Fatalf("%s: %d %s", what, code, b)
	}
	return r
}

func TestDecisions(t *testing.T) {
	w := newWorld(t)
	var logs logBuffer
	api := w.serve(httpapi.Config{Token: token}, slog.New(slog.NewJSONHandler(&logs, nil)))
	readOnly := w.serve(httpapi.Config{}, quiet)
	small := w.serve(httpapi.Config{Token: token, MaxBody: 128}, quiet)

	approve := w.submit(request("platform", "production", "app", "a", "a"))
	reject := w.submit(request("platform", "production", "app", "a", "a"))
	cancel := w.submit(request("platform", "production", "app", "a", "a"))
	done := w.submit(request("platform", "test", "app", "a", "a"))
	stuck := w.submit(request("platform", "test", "app", "a", "stuck"))
	waiting := api.waitFor(approve, 20*time.Second, saga.AwaitingApproval)
	api.waitFor(reject, 20*time.Second, saga.AwaitingApproval)
	api.waitFor(cancel, 20*time.Second, saga.AwaitingApproval)
	api.waitFor(done, 20*time.Second, saga.Succeeded)
	api.waitFor(stuck, 20*time.Second, saga.Verifying)
	if got := kinds(waiting.Timeline); got != "requested prechecking awaiting_approval" {
		t.Fatalf("timeline while waiting: %s", got)
	}
	path := "/v1/sagas/" + approve + "/approve"

	t.Run("auth", func(t *testing.T) {
		api, readOnly := api.with(t), readOnly.with(t)
		body := `{"actor":"mallory"}`
		for _, auth := range []string{"", "Bearer wrong", "Bearer " + token + "x", "Basic " + token, "Bearer", token} {
			code, h, b := api.post(path, auth, body)
			wantError(t, "Authorization "+auth, code, b, http.StatusUnauthorized)
			if !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("Authorization %q: WWW-Authenticate %q", auth, h.Get("WWW-Authenticate"))
			}
		}
		code, _, b := readOnly.post(path, bearer, body)
		wantError(t, "no token configured", code, b, http.StatusForbidden, "writes are disabled: no API token configured")
		// Reads need no token on either.
		readOnly.get("/v1/sagas/"+approve, &httpapi.SagaReply{})
	})

	t.Run("bad bodies", func(t *testing.T) {
		api, small := api.with(t), small.with(t)
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
			code, _, b := api.post(path, bearer, tc.body)
			wantError(t, "body "+tc.body, code, b, http.StatusBadRequest, tc.says)
		}
		big := `{"actor":"x","comment":"` + strings.Repeat("y", 200) + `"}`
		code, _, b := small.post(path, bearer, big)
		wantError(t, "oversize body", code, b, http.StatusBadRequest, "larger than 128 bytes")
	})

	// Nothing refused so far has reached the saga.
	if r := api.waitFor(approve, time.Second, saga.AwaitingApproval); r.Saga.Approval != nil || r.Saga.Seq != waiting.Saga.Seq {
		t.Fatalf("a refused decision changed the saga: approval %+v, seq %d -> %d", r.Saga.Approval, waiting.Saga.Seq, r.Saga.Seq)
	}

	t.Run("unknown saga and too late", func(t *testing.T) {
		api := api.with(t)
		code, _, b := api.post("/v1/sagas/no-such-saga/approve", bearer, `{"actor":"carol"}`)
		wantError(t, "approve unknown", code, b, http.StatusNotFound, "saga not found")
		code, _, b = api.post("/v1/sagas/"+done+"/approve", bearer, `{"actor":"carol"}`)
		wantError(t, "approve a finished saga", code, b, http.StatusConflict, "decision no longer possible", "saga is succeeded")
		code, _, b = api.post("/v1/sagas/"+stuck+"/approve", bearer, `{"actor":"carol"}`)
		wantError(t, "approve a saga that needs none", code, b, http.StatusConflict, "needs no approval")
		code, _, b = api.post("/v1/sagas/"+done+"/cancel", bearer, `{"actor":"carol"}`)
		wantError(t, "cancel a finished saga", code, b, http.StatusConflict, "already succeeded")
	})

	t.Run("approve", func(t *testing.T) {
		api := api.with(t)
		code, _, b := api.post(path, bearer, `{"actor":"carol","comment":"CAB-42"}`)
		if r := accepted(t, "approve", code, b); r.State != string(saga.AwaitingApproval) {
			t.Fatalf("accepted in state %s", r.State)
		}
		moved := api.waitFor(approve, 20*time.Second, saga.BackingUp, saga.Deploying, saga.Verifying, saga.Succeeded)
		if len(moved.Timeline) <= len(waiting.Timeline) {
			t.Fatalf("timeline did not grow: %s", kinds(moved.Timeline))
		}
		end := api.waitFor(approve, 20*time.Second, saga.Succeeded)
		if got := kinds(end.Timeline); got != "requested prechecking awaiting_approval approved backing_up deploying verifying succeeded" {
			t.Fatalf("timeline %s", got)
		}
		item := end.Timeline[3]
		if item.Actor != "carol" || item.Comment != "CAB-42" || item.State != string(saga.BackingUp) {
			t.Fatalf("approved item %+v", item)
		}
		if a := end.Saga.Approval; a == nil || a.Actor != "carol" || a.Comment != "CAB-42" {
			t.Fatalf("approval %+v", a)
		}
		code, _, b = api.post(path, bearer, `{"actor":"carol"}`)
		wantError(t, "approve twice", code, b, http.StatusConflict)
	})

	t.Run("reject", func(t *testing.T) {
		api := api.with(t)
		code, _, b := api.post("/v1/sagas/"+reject+"/reject", bearer, `{"actor":"dave","comment":"freeze"}`)
		accepted(t, "reject", code, b)
		r := api.waitFor(reject, 20*time.Second, saga.Rejected)
		if r.Saga.Reason != "rejected by dave: freeze" {
			t.Fatalf("reason %q", r.Saga.Reason)
		}
		if last := r.Timeline[len(r.Timeline)-1]; last.Kind != "rejected" || last.Reason != r.Saga.Reason {
			t.Fatalf("last timeline item %+v", last)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		api := api.with(t)
		code, _, b := api.post("/v1/sagas/"+cancel+"/cancel", bearer, `{"actor":"erin"}`)
		accepted(t, "cancel while waiting", code, b)
		r := api.waitFor(cancel, 20*time.Second, saga.Cancelled)
		if r.Saga.Reason != "cancelled by erin; nothing was deployed" {
			t.Fatalf("reason %q", r.Saga.Reason)
		}
		code, _, b = api.post("/v1/sagas/"+stuck+"/cancel", bearer, `{"actor":"erin","comment":"hung probe"}`)
		if rep := accepted(t, "cancel while verifying", code, b); rep.State != string(saga.Verifying) {
			t.Fatalf("accepted in state %s", rep.State)
		}
		r = api.waitFor(stuck, 20*time.Second, saga.RolledBack, saga.RollbackFailed)
		if r.Saga.State != saga.RolledBack || r.Saga.Reason != "cancelled by erin: hung probe" {
			t.Fatalf("state %s: %s", r.Saga.State, r.Saga.Reason)
		}
		if got := kinds(r.Timeline); !strings.HasSuffix(got, "verifying rolling_back rolled_back") {
			t.Fatalf("timeline %s", got)
		}
	})

	t.Run("writes are logged without the token", func(t *testing.T) {
		got := map[string]bool{}
		for _, l := range logs.lines(t) {
			if l["msg"] != "saga decision" {
				continue
			}
			for _, k := range []string{"method", "path", "saga", "actor", "outcome"} {
				if _, ok := l[k]; !ok {
					t.Fatalf("log line without %s: %v", k, l)
				}
			}
			got[l["outcome"].(string)+" "+l["actor"].(string)+" "+l["method"].(string)+" "+l["path"].(string)] = true
		}
		for _, want := range []string{
			"accepted carol POST " + path,
			"unauthorized  POST " + path,
			"bad_request  POST " + path,
			"not_found carol POST /v1/sagas/no-such-saga/approve",
			"too_late carol POST /v1/sagas/" + done + "/approve",
			"accepted erin POST /v1/sagas/" + stuck + "/cancel",
		} {
			if !got[want] {
				t.Errorf("no log line %q in %v", want, got)
			}
		}
		if strings.Contains(logs.String(), token) {
			t.Fatalf("the token is in the log:\n%s", logs.String())
		}
	})
}
