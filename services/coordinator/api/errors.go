package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// Errors a caller can tell apart, over NATS as over HTTP.
var (
	ErrBadRequest = errors.New("bad request")
	ErrNoSaga     = sagastore.ErrNotFound
	ErrTooLate    = errors.New("decision no longer possible")
)

// codes is the one table from an error to the code a caller sees: the
// NATS service answers with it, Error.Is reads it back on the client, and
// the HTTP API uses it as the status. An error none of these wraps is
// internal: 500.
var codes = []struct {
	err  error
	code int
}{
	{ErrBadRequest, http.StatusBadRequest},
	{ErrNoSaga, http.StatusNotFound},
	{ErrTooLate, http.StatusConflict},
}

// Code returns the code of err: that of the first sentinel error it wraps,
// else 500.
func Code(err error) int {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return http.StatusInternalServerError
}

// InternalError is all a caller is told of an error with code 500: its
// cause may name hosts, buckets, tables or connections, and is logged by
// the coordinator instead.
const InternalError = "internal error; see the coordinator's log"

// Error is an error answered by the API, with its code.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return e.Message + " (" + strconv.Itoa(e.Code) + ")" }

// Is matches the sentinel errors by their code, so errors.Is works across
// the wire.
func (e *Error) Is(target error) bool {
	for _, c := range codes {
		if target == c.err {
			return e.Code == c.code
		}
	}
	return false
}
