package api_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// A code read back from the wire matches the error it was made from, and
// nothing else.
func TestCodesRoundTrip(t *testing.T) {
	sentinels := []error{api.ErrBadRequest, api.ErrNoSaga, api.ErrTooLate}
	for _, tc := range []struct {
		err  error
		code int
		is   error
	}{
		{fmt.Errorf("%w: op %q", api.ErrBadRequest, "explode"), http.StatusBadRequest, api.ErrBadRequest},
		{fmt.Errorf("load saga x: %w", sagastore.ErrNotFound), http.StatusNotFound, api.ErrNoSaga},
		{fmt.Errorf("%w: saga is succeeded", api.ErrTooLate), http.StatusConflict, api.ErrTooLate},
		{errors.New("nats: connection closed"), http.StatusInternalServerError, nil},
		{fmt.Errorf("load: %w", sagastore.ErrConflict), http.StatusInternalServerError, nil},
	} {
		code := api.Code(tc.err)
		if code != tc.code {
			t.Errorf("%v: code %d, want %d", tc.err, code, tc.code)
		}
		wire := &api.Error{Code: code, Message: tc.err.Error()}
		for _, s := range sentinels {
			if got := errors.Is(wire, s); got != (s == tc.is) {
				t.Errorf("code %d: errors.Is(%v) = %v", code, s, got)
			}
		}
		// Passed on again (a proxy, a retry), it keeps its code.
		if again := api.Code(fmt.Errorf("relayed: %w", wire)); again != code {
			t.Errorf("code %d relayed is %d", code, again)
		}
	}
}
