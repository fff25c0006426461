package bus_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/natstest"
)

// Unanswered tells JetStream not answering from JetStream refusing, on the
// errors a real server gives.
func TestUnansweredTellsSilenceFromRefusal(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t)
	ctx := context.Background()
	_, silent := js.Publish(ctx, "no.stream.here", []byte("x"))
	_, refused := js.Publish(ctx, "upshift.evt.s.deploy.started", []byte("x"), jetstream.WithExpectLastSequence(999))
	_, missing := js.Stream(ctx, "NOSUCHSTREAM")
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"no stream for the subject", silent, true},
		{"wrapped by Send", fmt.Errorf("publish x: %w", silent), true},
		{"in process", &jetstream.APIError{ErrorCode: bus.ErrCodeDuplicateInProcess}, true},
		{"cluster not available", &jetstream.APIError{ErrorCode: 10008}, true},
		{"timeout", context.DeadlineExceeded, true},
		{"wrong last sequence", refused, false},
		{"stream not found", missing, false},
		{"malformed", errors.New("decode: unexpected end of JSON input"), false},
		{"none", nil, false},
	}
	for _, c := range cases {
		if c.err == nil && c.want {
			t.Fatalf("%s: no error", c.name)
		}
		if got := bus.Unanswered(c.err); got != c.want {
			t.Errorf("%s: Unanswered(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
	if silent == nil || refused == nil || missing == nil {
		t.Fatalf("expected errors, got %v, %v, %v", silent, refused, missing)
	}
}
