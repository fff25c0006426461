// Package consumer runs a handler over a durable JetStream pull consumer as
// a pipeline, in the manner of watermill's message router: a pull loop that
// alone owns each message, and middleware around the handler that decides
// what becomes of it. Handlers hold only their own logic.
//
// # Types
//
//	type Delivery struct{ /* unexported */ }  // read-only facts of one delivery
//	type Handler func(ctx context.Context, d *Delivery) error
//	type Middleware func(Handler) Handler
//
// A handler gets the decoded event (d.Event) and the facts of its delivery
// (subject, stream sequence, delivery count, pending count, headers, raw
// data), never the jetstream.Msg, so it cannot ack, nak or terminate the
// message behind the runner's back. It says what happened by what it
// returns: nil acks the message; an error wrapped by Permanent, or an
// events.ErrMalformed, is dead-lettered at once; any other error is retried.
//
// # The pull loop
//
// A Runner ensures its durable consumer and consumes it through Messages():
//
//   - InProgress heartbeats from when a message is taken until it is
//     settled, so neither a slow handler, nor one waiting for a free slot,
//     nor a slow dead-letter publish lets it be redelivered;
//   - three ways to settle: ack; nak with a delay; terminate with a dead
//     letter: the message's first 64 KiB published to DEADLETTER first. If
//     that publish fails the message is retried instead of terminated; on
//     its last delivery, published again until it is out;
//   - a consumer that disappears (deleted by an operator, lost with its
//     stream) is created again; Ready is false while it cannot be;
//   - the consumer's pending count is read every Heartbeat, so the gauge
//     follows an idle consumer too;
//   - on shutdown it stops pulling, lets running handlers finish within a
//     grace period, then cancels them.
//
// # The middleware
//
// New wraps the handler in this chain, outermost first:
//
//	Metrics.Middleware  counts each result and times it, settlement included
//	GiveUpAfter         on the last delivery, turns a retry into a dead
//	                    letter ("gave up"), after the GiveUp hook
//	Classify            nil stays nil; a permanent or malformed error becomes
//	                    a dead letter ("rejected"), any other a retry after
//	                    the back-off for its delivery
//	Recover             a panic below it (decoding, the caller's middleware,
//	                    the handler) is an error, not a crash
//	Decode              decodes the CloudEvent; an undecodable one is malformed
//	LogSaga             adds the saga id to d.Log
//	(WithMiddleware)    the caller's own, if any
//
// Classify and GiveUpAfter return verdicts: errors that the pull loop reads
// with errors.As to choose how to settle. An error that reaches the loop
// without one is retried after the back-off for its delivery.
//
// A message whose last delivery is never settled (a killed process) is
// dead-lettered from the server's advisory by the runner's follower of lost
// messages (lost.go), whose pipeline has no Decode: advisories are not
// CloudEvents.
package consumer
