package consumer

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/upshift/upshift/pkg/events"
)

// Reasons of a dead letter written by a runner.
const (
	ReasonRejected = "rejected" // a permanent or malformed error
	ReasonGaveUp   = "gave up"  // an error on the last delivery
)

// retryVerdict asks the pull loop for the message again after delay.
type retryVerdict struct {
	err   error
	delay time.Duration
}

// RetryAfter asks for the message again after delay, instead of the
// configured back-off: a handler that keeps its own schedule (notify's
// exponential back-off with jitter) returns it. On the last delivery it is
// given up like any other retry.
func RetryAfter(err error, delay time.Duration) error { return &retryVerdict{err: err, delay: delay} }

func (v *retryVerdict) Error() string { return v.err.Error() }
func (v *retryVerdict) Unwrap() error { return v.err }

// deadVerdict asks the pull loop to dead-letter the message and terminate it.
type deadVerdict struct {
	err    error
	reason string
}

func (v *deadVerdict) Error() string { return v.err.Error() }
func (v *deadVerdict) Unwrap() error { return v.err }

// Recover turns a panicking handler into an error, so that the message is
// retried like any other failure and the process lives on.
func Recover(next Handler) Handler {
	return func(ctx context.Context, d *Delivery) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("handler panicked: %v\n%s", p, debug.Stack())
			}
		}()
		return next(ctx, d)
	}
}

// Decode decodes the message as a CloudEvent for the handler. An undecodable
// message never reaches it: it is malformed.
func Decode(next Handler) Handler {
	return func(ctx context.Context, d *Delivery) error {
		env, err := events.Decode(d.data)
		if err != nil {
			return err
		}
		d.event = env
		return next(ctx, d)
	}
}

// LogSaga puts the decoded event's saga id on the delivery's logger, for
// every line about it: the handler's and the settlement's.
func LogSaga(next Handler) Handler {
	return func(ctx context.Context, d *Delivery) error {
		if s := d.event.Saga; s != "" {
			d.log = d.log.With("saga", s)
		}
		return next(ctx, d)
	}
}

// Classify turns an error into a verdict: one no retry can fix (Permanent,
// events.ErrMalformed) is dead-lettered at once, any other is retried after
// backoff[delivery-1], the last value repeating. A verdict from further in is
// kept.
func Classify(backoff []time.Duration) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, d *Delivery) error {
			err := next(ctx, d)
			switch {
			case err == nil || isVerdict(err):
				return err
			case errors.Is(err, events.ErrMalformed) || errors.Is(err, ErrPermanent):
				return &deadVerdict{err: err, reason: ReasonRejected}
			default:
				return &retryVerdict{err: err, delay: backoffFor(backoff, d.delivered)}
			}
		}
	}
}

// GiveUpAfter decides the dead letter of a message retried once too often:
// on its maxDeliver-th delivery the server would not deliver it again, so a
// retry becomes a dead letter, after giveUp (if not nil) is told.
func GiveUpAfter(maxDeliver int, giveUp GiveUp) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, d *Delivery) error {
			err := next(ctx, d)
			var retry *retryVerdict
			if !errors.As(err, &retry) || d.delivered < uint64(maxDeliver) {
				return err
			}
			if giveUp != nil {
				giveUp(ctx, d, retry.err)
			}
			return &deadVerdict{err: retry.err, reason: ReasonGaveUp}
		}
	}
}

func isVerdict(err error) bool {
	var r *retryVerdict
	var d *deadVerdict
	return errors.As(err, &r) || errors.As(err, &d)
}

// backoffFor is the delay before the delivery after the delivered-th.
func backoffFor(backoff []time.Duration, delivered uint64) time.Duration {
	i := min(int(max(delivered, 1))-1, len(backoff)-1)
	return backoff[i]
}
