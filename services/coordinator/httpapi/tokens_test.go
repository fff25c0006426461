package httpapi_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/testlog"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/coordinatord"
	"github.com/upshift/upshift/services/coordinator/httpapi"
)

// The bearer tokens of the named callers of these tests, and a file of
// their hashes.
var named = map[string]string{
	"rita":  "tok-rita-read-only",
	"alice": "tok-alice-approver",
	"oscar": "tok-oscar-operator",
	"root":  "tok-root-everything",
}

func hashOf(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

const tokensYAML = `tokens:
  - name: rita
    sha256: %rita%
    roles: [read]
  - name: alice
    sha256: %alice%
    roles: [approve]
  - name: oscar
    sha256: %oscar%
    roles: [operate]
  - name: root
    sha256: %root%
    roles: [read, approve, operate]
`

func tokensFile(t *testing.T) string {
	t.Helper()
	conf := tokensYAML
	for name, tok := range named {
		conf = strings.ReplaceAll(conf, "%"+name+"%", hashOf(tok))
	}
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func loadTokens(t *testing.T) []httpapi.Token {
	t.Helper()
	ts, err := httpapi.LoadTokens(tokensFile(t))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// Each route with a token of each role: read grants the GET routes,
// approve grants approve and reject, operate grants cancel; nothing else.
// No token, or an unknown one, is a 401 everywhere.
func TestTokenRoles(t *testing.T) {
	t.Parallel()
	b := newBackend(view("w1", saga.StateAwaitingApproval, 3))
	s := newServer(t, b, httpapi.Config{Tokens: loadTokens(t)}, quiet)
	routes := []struct {
		method, path string
		role         httpapi.Role
	}{
		{http.MethodGet, "/v1/sagas", httpapi.RoleRead},
		{http.MethodGet, "/v1/sagas/w1", httpapi.RoleRead},
		{http.MethodGet, "/v1/sagas/w1/history", httpapi.RoleRead},
		{http.MethodPost, "/v1/sagas/w1/approve", httpapi.RoleApprove},
		{http.MethodPost, "/v1/sagas/w1/reject", httpapi.RoleApprove},
		{http.MethodPost, "/v1/sagas/w1/cancel", httpapi.RoleOperate},
	}
	roles := map[string][]httpapi.Role{"rita": {httpapi.RoleRead}, "alice": {httpapi.RoleApprove},
		"oscar": {httpapi.RoleOperate}, "root": httpapi.Roles}
	for _, rt := range routes {
		for name, tok := range named {
			code, h, body := s.do(rt.method, rt.path, "Bearer "+tok, strings.NewReader(`{"comment":"c"}`))
			what := rt.method + " " + rt.path + " as " + name
			if slices.Contains(roles[name], rt.role) {
				if code != http.StatusOK && code != http.StatusAccepted {
					t.Errorf("%s: %d %s", what, code, body)
				}
				continue
			}
			wantError(t, what, code, body, http.StatusForbidden, `token "`+name+`" lacks the `+string(rt.role)+" role")
			if !strings.Contains(h.Get("WWW-Authenticate"), "insufficient_scope") {
				t.Errorf("%s: WWW-Authenticate %q", what, h.Get("WWW-Authenticate"))
			}
		}
		for _, auth := range []string{"", "Bearer nobody's", "Bearer " + hashOf(named["root"]), "Basic " + named["root"]} {
			code, _, body := s.do(rt.method, rt.path, auth, strings.NewReader(`{"comment":"c"}`))
			wantError(t, rt.method+" "+rt.path+" with Authorization "+auth, code, body, http.StatusUnauthorized)
		}
	}
	// approve, reject and cancel by alice, alice and oscar; then by root
	// three times.
	if n := len(b.decisions()); n != 6 {
		t.Fatalf("%d decisions reached the backend, want 6", n)
	}
}

// A named token's decision is recorded as taken by its name: a body that
// leaves the actor out is the token's name, one that names someone else is
// refused and reaches nothing. The single token still takes the body's.
func TestTheActorIsTheTokensName(t *testing.T) {
	t.Parallel()
	b := newBackend(view("w1", saga.StateAwaitingApproval, 3))
	s := newServer(t, b, httpapi.Config{Token: token, Tokens: loadTokens(t)}, quiet)
	alice, oscar := "Bearer "+named["alice"], "Bearer "+named["oscar"]
	for _, body := range []string{`{"comment":"CAB-42"}`, `{"actor":"alice","comment":"CAB-42"}`} {
		code, _, got := s.post("/v1/sagas/w1/approve", alice, body)
		accepted(t, body, code, got)
	}
	code, _, got := s.post("/v1/sagas/w1/cancel", oscar, `{"actor":"carol"}`)
	wantError(t, "oscar as carol", code, got, http.StatusForbidden, `actor "carol": this token is "oscar"'s`)
	code, _, got = s.post("/v1/sagas/w1/reject", bearer, `{"actor":"dave"}`)
	accepted(t, "single token", code, got)
	code, _, got = s.post("/v1/sagas/w1/reject", bearer, `{}`)
	wantError(t, "single token without an actor", code, got, http.StatusBadRequest, "actor is required")
	want := []api.ControlRequest{
		{ID: "w1", Op: events.OpApprove, Actor: "alice", Comment: "CAB-42"},
		{ID: "w1", Op: events.OpApprove, Actor: "alice", Comment: "CAB-42"},
		{ID: "w1", Op: events.OpReject, Actor: "dave"},
	}
	if got := b.decisions(); !slices.Equal(got, want) {
		t.Fatalf("the backend was asked %+v, want %+v", got, want)
	}
	// With the single token alone, reads stay open as they were.
	open := newServer(t, b, httpapi.Config{Token: token}, quiet)
	open.get("/v1/sagas/w1", &httpapi.SagaReply{})
}

// A token is never logged, allowed or refused; its name is.
func TestTokensAreNotLogged(t *testing.T) {
	t.Parallel()
	b := newBackend(view("w1", saga.StateAwaitingApproval, 3))
	var logs testlog.Buffer
	s := newServer(t, b, httpapi.Config{Token: token, Tokens: loadTokens(t)}, slog.New(slog.NewJSONHandler(&logs, nil)))
	for _, tok := range named {
		s.post("/v1/sagas/w1/approve", "Bearer "+tok, `{}`)
		s.post("/v1/sagas/w1/cancel", "Bearer "+tok, `{"actor":"mallory"}`)
		s.do(http.MethodGet, "/v1/sagas/w1", "Bearer "+tok, nil)
	}
	s.do(http.MethodGet, "/v1/sagas", "Bearer wrong-"+named["root"], nil)
	s.post("/v1/sagas/w1/reject", bearer, `{"actor":"dave"}`)
	got := map[string]bool{}
	for _, l := range logs.JSONLines(t) {
		str := func(k string) string { v, _ := l[k].(string); return v }
		got[str("msg")+" "+str("token")+" "+str("actor")] = true
	}
	for _, want := range []string{"saga decision alice alice", "saga decision oscar ", "saga decision api-token dave",
		"saga read refused alice ", "saga read refused  "} {
		if !got[want] {
			t.Errorf("no log line %q in %v", want, got)
		}
	}
	for _, tok := range append(slices.Collect(maps.Values(named)), token) {
		if strings.Contains(logs.String(), tok) {
			t.Fatalf("the token %q is in the log:\n%s", tok, logs.String())
		}
	}
}

func TestLoadTokensRefusesBadFiles(t *testing.T) {
	t.Parallel()
	h := hashOf("x")
	for _, tc := range []struct{ name, conf, says string }{
		{"empty", "tokens: []\n", "no token"},
		{"no name", "tokens: [{sha256: " + h + ", roles: [read]}]\n", "name must be"},
		{"name twice", "tokens: [{name: a, sha256: " + h + ", roles: [read]}, {name: a, sha256: " + hashOf("y") + ", roles: [read]}]\n", "name given twice"},
		{"same token", "tokens: [{name: a, sha256: " + h + ", roles: [read]}, {name: b, sha256: " + strings.ToUpper(h) + ", roles: [read]}]\n", "the same token as another"},
		{"not a hash", "tokens: [{name: a, sha256: s3cret, roles: [read]}]\n", "64 hexadecimal digits"},
		{"no roles", "tokens: [{name: a, sha256: " + h + "}]\n", "no roles"},
		{"unknown role", "tokens: [{name: a, sha256: " + h + ", roles: [admin]}]\n", `no role "admin"`},
		{"the token itself", "tokens: [{name: a, token: s3cret, roles: [read]}]\n", `unknown field "token"`},
	} {
		path := filepath.Join(t.TempDir(), "tokens.yaml")
		if err := os.WriteFile(path, []byte(tc.conf), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := httpapi.LoadTokens(path)
		if !errors.Is(err, httpapi.ErrTokens) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.says)
		}
	}
	if _, err := httpapi.LoadTokens(filepath.Join(t.TempDir(), "none.yaml")); !errors.Is(err, httpapi.ErrTokens) {
		t.Errorf("missing file: %v", err)
	}
}

// Over a real coordinator started with --api-tokens: alice's approval is
// recorded as hers in the saga, its timeline and its audit log, and a
// forged actor reaches none of them.
func TestTheTokensNameIsInTheAuditLog(t *testing.T) {
	path := tokensFile(t)
	w := newWorld(t, func(s *coordinatord.Settings) { s.APIToken, s.APITokensFile = "", path })
	s := &client{t: t, url: "http://" + w.http}
	id := w.submit(request("dba", "production", "db"))
	code, _, body := s.do(http.MethodGet, "/v1/sagas/"+id, "", nil)
	wantError(t, "a read without a token", code, body, http.StatusUnauthorized)
	reader := &client{t: t, url: s.url, auth: "Bearer " + named["rita"]}
	reader.waitFor(id, natstest.Patience, saga.StateAwaitingApproval)
	code, _, body = s.post("/v1/sagas/"+id+"/approve", "Bearer "+named["alice"], `{"actor":"carol","comment":"forged"}`)
	wantError(t, "alice as carol", code, body, http.StatusForbidden, "this token is")
	code, _, body = s.post("/v1/sagas/"+id+"/approve", "Bearer "+named["alice"], `{"comment":"CAB-42"}`)
	accepted(t, "approve", code, body)
	end := reader.waitFor(id, natstest.Patience, saga.StateSucceeded)
	if end.Saga.Approval == nil || end.Saga.Approval.Actor != "alice" {
		t.Fatalf("approval %+v", end.Saga.Approval)
	}
	var h httpapi.HistoryReply
	reader.get("/v1/sagas/"+id+"/history", &h)
	var actors []string
	for _, e := range h.Entries {
		if e.Type == events.TypeControl {
			var ce struct{ Data events.Control }
			if err := json.Unmarshal(e.Event, &ce); err != nil {
				t.Fatal(err)
			}
			actors = append(actors, ce.Data.Actor)
		}
	}
	if !slices.Equal(actors, []string{"alice"}) {
		t.Fatalf("decisions in the audit log by %v, want alice only", actors)
	}
	if strings.Contains(fmt.Sprint(h), "carol") || strings.Contains(fmt.Sprint(end), "carol") {
		t.Fatal("the forged actor is in the saga or its audit log")
	}
}
