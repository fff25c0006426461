package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/services/coordinator/api"
)

// DecisionBody is the body of POST /v1/sagas/{id}/approve, /reject and
// /cancel. Actor is required with the single token; with a named token it
// may be left out, and if given must be the token's name.
type DecisionBody struct {
	Actor   string `json:"actor"`
	Comment string `json:"comment,omitempty"`
}

// ConfirmBody is the body of POST /v1/sagas/{id}/confirm: the role
// confirmed and who confirms it. By is required with the single token;
// with a named token it may be left out, and if given must be the token's
// name.
type ConfirmBody struct {
	Role    string `json:"role"`
	By      string `json:"by"`
	Comment string `json:"comment,omitempty"`
}

// errNoToken is the 403 of an API that was given no token.
const errNoToken = "writes are disabled: no API token configured"

// decide serves one operator's decision. Whatever the outcome, one log line
// says who asked what of which saga and what came of it.
func (s *server) decide(op events.ControlOp, role Role) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var (
			who   caller
			actor string
			code  int
			cause error
		)
		defer func() {
			s.logWrite(r, who, actor, code, cause)
		}()
		if len(s.known.hashes) == 0 {
			writeError(w, http.StatusForbidden, errNoToken)
			code = http.StatusForbidden
			return
		}
		if who, code = s.authorize(w, r, role); code != 0 {
			return
		}
		id, err := sagaID(r)
		if err != nil {
			code, cause = s.fail(w, r, err), err
			return
		}
		body, role, err := s.body(w, r, who, op)
		if err != nil {
			code, cause = s.fail(w, r, err), err
			return
		}
		if actor, err = who.actor(body); err != nil {
			code, cause = http.StatusForbidden, err
			writeError(w, code, err.Error())
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
		defer cancel()
		reply, err := s.b.Decide(ctx, api.ControlRequest{ID: id, Op: op, Actor: actor, Comment: body.Comment, Role: role})
		if err != nil {
			code, cause = s.fail(w, r, err), err
			return
		}
		code = http.StatusAccepted
		writeJSON(w, code, reply)
	}
}

// body reads a decision (a confirmation, for op confirm, with its role):
// one JSON object, no unknown fields, no trailing data, within the size
// limit, with an actor if the caller has no name.
func (s *server) body(w http.ResponseWriter, r *http.Request, who caller, op events.ControlOp) (DecisionBody, string, error) {
	if op == events.OpConfirm {
		var c ConfirmBody
		if err := s.decode(w, r, &c, `{"role": "dba", "by": "...", "comment": "..."}`); err != nil {
			return DecisionBody{}, "", err
		}
		var missing []string
		if strings.TrimSpace(c.Role) == "" {
			missing = append(missing, "role is required")
		}
		if who.name == "" && strings.TrimSpace(c.By) == "" {
			missing = append(missing, "by is required")
		}
		if len(missing) > 0 {
			return DecisionBody{}, "", badRequest("body: %s", strings.Join(missing, "; "))
		}
		return DecisionBody{Actor: c.By, Comment: c.Comment}, c.Role, nil
	}
	var b DecisionBody
	if err := s.decode(w, r, &b, `{"actor": "...", "comment": "..."}`); err != nil {
		return b, "", err
	}
	if who.name == "" && strings.TrimSpace(b.Actor) == "" {
		return b, "", badRequest("body: actor is required")
	}
	return b, "", nil
}

func (s *server) decode(w http.ResponseWriter, r *http.Request, v any, want string) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("more than one JSON value")
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return badRequest("body: larger than %d bytes", tooBig.Limit)
	case errors.Is(err, io.EOF):
		return badRequest("body: empty; want %s", want)
	case err != nil:
		return badRequest("body: %v", err)
	}
	return nil
}

// logWrite logs a write without its headers: the token never reaches the
// log, its name does.
func (s *server) logWrite(r *http.Request, who caller, actor string, code int, cause error) {
	outcome, level := "accepted", slog.LevelInfo
	switch code {
	case http.StatusAccepted:
	case http.StatusUnauthorized:
		outcome, level = "unauthorized", slog.LevelWarn
	case http.StatusForbidden:
		outcome, level = "forbidden", slog.LevelWarn
	case http.StatusBadRequest:
		outcome, level = "bad_request", slog.LevelWarn
	case http.StatusNotFound:
		outcome, level = "not_found", slog.LevelWarn
	case http.StatusConflict:
		outcome, level = "too_late", slog.LevelWarn
	default:
		outcome, level = "error", slog.LevelError
	}
	attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.String("saga", r.PathValue("id")), slog.String("actor", actor), slog.String("token", who.String()), slog.String("outcome", outcome),
		slog.Int("status", code), slog.String("remote", r.RemoteAddr)}
	if cause != nil {
		attrs = append(attrs, slog.String("err", cause.Error()))
	}
	s.log.LogAttrs(r.Context(), level, "saga decision", attrs...)
}
