package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
)

// errWrongActor is the 403 of a decision whose body names another actor
// than its token: a token speaks for one person.
const errWrongActor = "actor %q: this token is %q's; leave actor out or give that name"

// authorize answers and returns the status if the request may not do what
// role grants; otherwise it returns the caller and 0. No token, or one that
// is not known, is a 401; a known token without the role, a 403.
func (s *server) authorize(w http.ResponseWriter, r *http.Request, role Role) (caller, int) {
	scheme, given, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(given) == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="upshift"`)
		writeError(w, http.StatusUnauthorized, "a bearer token is required: Authorization: Bearer <token>")
		return caller{}, http.StatusUnauthorized
	}
	who, ok := s.known.find(strings.TrimSpace(given))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="upshift", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "the bearer token is not valid")
		return caller{}, http.StatusUnauthorized
	}
	if !who.has(role) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="upshift", error="insufficient_scope"`)
		writeError(w, http.StatusForbidden, fmt.Sprintf("token %q lacks the %s role", who.name, role))
		return who, http.StatusForbidden
	}
	return who, 0
}

// read guards a GET route: open unless named tokens are configured, then
// for a token with the read role. A refused read is logged.
func (s *server) read(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if len(s.cfg.Tokens) == 0 {
			h(w, r)
			return
		}
		who, code := s.authorize(w, r, RoleRead)
		if code != 0 {
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "saga read refused", slog.String("method", r.Method),
				slog.String("path", r.URL.Path), slog.String("token", who.String()), slog.Int("status", code),
				slog.String("remote", r.RemoteAddr))
			return
		}
		h(w, r)
	}
}

func (c caller) has(role Role) bool { return slices.Contains(c.roles, role) }

// String names the caller in a log line: its token's name, "api-token"
// for the single token, empty when unknown.
func (c caller) String() string {
	if c.name == "" && len(c.roles) > 0 {
		return "api-token"
	}
	return c.name
}

// actor is who a decision is recorded as taken by: a named token's name,
// or for the single token the body's actor.
func (c caller) actor(b DecisionBody) (string, error) {
	if c.name == "" {
		return b.Actor, nil
	}
	if a := strings.TrimSpace(b.Actor); a != "" && a != c.name {
		return "", fmt.Errorf(errWrongActor, a, c.name)
	}
	return c.name, nil
}
