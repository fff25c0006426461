package streams

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// A bucket's stream not found after the bucket was found or created is
// tried again while the cluster places it; any other error, or a stream
// not found elsewhere, is not.
func TestStreamNotFoundAfterTheBucketIsStillPlacing(t *testing.T) {
	api := &jetstream.APIError{Code: 404, ErrorCode: jetstream.JSErrCodeStreamNotFound, Description: "stream not found"}
	for _, err := range []error{jetstream.ErrStreamNotFound, fmt.Errorf("status: %w", api)} {
		if !forming(notFoundYet(err)) {
			t.Errorf("%v after the bucket: not tried again", err)
		}
		if forming(err) {
			t.Errorf("%v anywhere: tried again", err)
		}
	}
	if other := errors.New("refused"); forming(notFoundYet(other)) {
		t.Error("another error after the bucket: tried again")
	}
}
