// Package httpapi serves the coordinator over HTTP with JSON, for
// dashboards, scripts and other tools: list sagas, show one with its
// timeline, read its audit log, and approve, reject, cancel or confirm it;
// list the registry of targets. It calls
// the same coordinator methods as the NATS API the CLI uses, so both answer
// alike and a decision taken here is durable in the same way.
//
// Callers are told apart by bearer tokens. The simplest configuration is one
// token (Config.Token): reads are open, the token may take every decision,
// and the actor is what the caller says in the body. A tokens file
// (Config.Tokens, LoadTokens) names each caller and gives it roles: then
// every route needs a token with its role (read for GET, approve for approve
// and reject, operate for cancel, confirm for confirm), and the actor of a decision is the
// token's name. With neither, reads are open and writes are refused. Every
// answer under /v1/ is JSON, errors included ({"error": "...", "code": n}).
//
// Changes are read by polling GET, or from EVENTS; /healthz and /metrics are
// the ops server's.
//
// The same server serves a web page under /ui/ (ui.go): the list of sagas,
// one saga with its live timeline, its plan and report, and forms for the
// same decisions with the same rights. A browser signs in with an API
// token, kept in an HttpOnly cookie; its forms are refused from any other
// origin.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/fleet"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// Backend is what the API needs of a coordinator; *coordinator.Coordinator
// implements it. Its errors are told apart by api.Code, as the NATS API
// tells them.
type Backend interface {
	Get(ctx context.Context, id string) (api.View, error)
	List(ctx context.Context, f sagastore.Filter) (api.ListReply, error)
	History(ctx context.Context, id string) ([]sagastore.Entry, error)
	Decide(ctx context.Context, req api.ControlRequest) (api.ControlReply, error)
	Targets(ctx context.Context, selector string) (fleet.Listing, error)
}

// Config of the API.
type Config struct {
	// Token is a bearer token that may take every decision, the actor
	// being the one the body names; reads stay open unless Tokens is set.
	Token string
	// Tokens are named tokens with roles (LoadTokens). When set, every
	// route needs one with its role, and a decision's actor is the token's
	// name. With neither Token nor Tokens every write is refused with 403.
	Tokens []Token
	// MaxBody bounds a request body in bytes. Default 64 KiB.
	MaxBody int64
}

// DefaultMaxBody is the body limit when Config.MaxBody is not set.
const DefaultMaxBody = 64 << 10

// callTimeout bounds each call to the backend, as the NATS API does: a
// store that hangs must not hold connections forever.
const callTimeout = 10 * time.Second

type server struct {
	b     Backend
	cfg   Config
	known known
	log   *slog.Logger
	ui    *ui
}

// New returns the API's handler. It answers /v1/..., the web page under
// /ui/ and a JSON 404 for anything else, so it is mounted at "/".
func New(b Backend, cfg Config, log *slog.Logger) http.Handler {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{b: b, cfg: cfg, known: newKnown(cfg), log: log.With("component", "httpapi"), ui: newUI()}
	mux := http.NewServeMux()
	s.uiRoutes(mux)
	routes := []struct {
		method, path string
		h            http.HandlerFunc
	}{
		{http.MethodGet, "/v1/sagas", s.read(s.list)},
		{http.MethodGet, "/v1/sagas/{id}", s.read(s.get)},
		{http.MethodGet, "/v1/sagas/{id}/history", s.read(s.history)},
		{http.MethodGet, "/v1/targets", s.read(s.targets)},
		{http.MethodPost, "/v1/sagas/{id}/approve", s.decide(events.OpApprove, RoleApprove)},
		{http.MethodPost, "/v1/sagas/{id}/reject", s.decide(events.OpReject, RoleApprove)},
		{http.MethodPost, "/v1/sagas/{id}/cancel", s.decide(events.OpCancel, RoleOperate)},
		{http.MethodPost, "/v1/sagas/{id}/confirm", s.decide(events.OpConfirm, RoleConfirm)},
	}
	for _, r := range routes {
		mux.HandleFunc(r.method+" "+r.path, r.h)
		// The same path without a method catches the other methods, so
		// that a 405 is JSON too (the mux's own is text).
		mux.HandleFunc(r.path, notAllowed(r.method))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such route: "+r.URL.Path)
	})
	return mux
}

func notAllowed(method string) http.HandlerFunc {
	allow := method
	if method == http.MethodGet {
		allow += ", " + http.MethodHead
	}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, r.Method+" not allowed here; use "+allow)
	}
}
