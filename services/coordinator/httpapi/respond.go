package httpapi

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/upshift/upshift/services/coordinator/api"
)

// Error is the body of every answer that is not a success.
type Error struct {
	Error string `json:"error"`
	Code  int    `json:"code"`
}

// badRequest makes an error the API answers with 400, the way the
// coordinator's own are.
func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", api.ErrBadRequest, fmt.Sprintf(format, args...))
}

// fail answers with the error's code (the NATS API's) as the status; a 500
// is logged and its cause kept from the client.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) int {
	code := api.Code(err)
	msg := err.Error()
	if code == http.StatusInternalServerError {
		s.log.LogAttrs(r.Context(), slog.LevelError, "request failed", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.String("saga", r.PathValue("id")), slog.Any("err", err))
		msg = api.InternalError
	}
	writeError(w, code, msg)
	return code
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, Error{Error: msg, Code: code})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own types get here, and they all marshal; answer
		// something well formed regardless.
		code, b = http.StatusInternalServerError, []byte(`{"error":"cannot encode the answer","code":500}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
