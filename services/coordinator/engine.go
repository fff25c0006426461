package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/fleet"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// engine applies inputs to sagas: load, transition, store with
// compare-and-set (a conflict reloads and tries again), then publish the
// transition's outbox. An input is acknowledged only after that, so a crash
// anywhere leaves it to be redelivered, and the redelivery either finds the
// transition not stored (and makes it) or stored (and ignores it as a
// duplicate) and in both cases publishes what is still pending.
type engine struct {
	store   sagastore.Store
	js      jetstream.JetStream
	log     *slog.Logger
	source  string
	now     func() time.Time
	metrics *Metrics
	// registry is the registry of targets, set by Run before any input is
	// handled; ttl its entries' life.
	registry jetstream.KeyValue
	ttl      time.Duration
	// view follows the registry in memory, if it could be started: a
	// target it has as served is, without asking the registry.
	view *fleet.View
	// marks are the messages published whose mark as sent waits for the
	// saga's next change.
	marks marks
	// recent are the records last stored here, each saga's next input
	// applied to them without reading the saga again.
	recent recent
	// turns apply one input of a saga at a time.
	turns turns
}

// markTimeout bounds the writing of one mark as sent.
const markTimeout = 10 * time.Second

// markSent marks rec's messages ids sent; a failure is logged: they will
// be sent again, and dropped as duplicates.
func (e *engine) markSent(ctx context.Context, rec sagastore.Record, ids []string) {
	ctx, cancel := context.WithTimeout(ctx, markTimeout)
	defer cancel()
	// The saga's pending messages change, and in KV its revision: a record
	// kept (recent) would be stale, before and after.
	e.recent.forget(rec.Saga.ID)
	defer e.recent.forget(rec.Saga.ID)
	if err := e.store.Sent(ctx, rec, ids); err != nil {
		e.log.Warn("cannot mark outbox sent", "saga", rec.Saga.ID, "err", err)
	}
}

// maxConflicts bounds the reload-and-retry loop on one input.
const maxConflicts = 100

// seen is the message an input arrived in, for the audit log.
type seen struct {
	env     events.Envelope
	subject string
	raw     []byte
}

func seenOf(d *consumer.Delivery) seen {
	return seen{env: d.Event(), subject: d.Subject(), raw: d.Data()}
}

func (s seen) entry(sagaID string, seq int, at time.Time, note string) sagastore.Entry {
	return sagastore.Entry{ID: string(sagastore.In) + "/" + s.env.ID, Saga: sagaID, Seq: seq, At: at,
		Direction: sagastore.In, Type: s.env.Type, Subject: s.subject, Note: note, Event: s.raw}
}

// create stores a new saga after its first transition.
func (e *engine) create(ctx context.Context, s saga.Saga, in saga.Input, from seen) error {
	next, eff := saga.Apply(s, in)
	msgs, entries, err := e.effects(next, eff)
	if err != nil {
		return err
	}
	entries = append([]sagastore.Entry{from.entry(s.ID, next.Seq, in.At, "")}, entries...)
	rec, err := e.store.Create(ctx, next, sagastore.Change{Outbox: msgs, Audit: entries})
	if errors.Is(err, sagastore.ErrExists) {
		// A redelivered request: the saga exists; publish what it may still
		// have pending.
		e.log.Info("request already accepted", "saga", s.ID)
		return e.flushStored(ctx, s.ID)
	}
	if err != nil {
		return err
	}
	e.metrics.transition(saga.Saga{}, next, eff)
	e.recent.put(rec)
	return e.flush(ctx, rec, nil, true)
}

// handle applies an input to an existing saga, in its turn (turns): with
// the inputs of the saga waiting behind it, in one write, or by the input
// whose turn it is.
func (e *engine) handle(ctx context.Context, id string, in saga.Input, from seen) error {
	j := newJob(in, from)
	if applied, err := e.turns.wait(ctx, id, j); applied {
		return err
	}
	group := e.turns.group(id, j)
	errs := make([]error, len(group))
	for i := range errs {
		errs[i] = errHolderPanicked // until told otherwise
	}
	defer func() {
		// Even if applying panicked (the consumer recovers it), each
		// input of the group hears, and the turn passes on.
		for i, o := range group[1:] {
			o.done <- errs[i+1]
		}
		e.turns.pass(id)
	}()
	err := e.safeApply(ctx, id, group)
	for i := range errs {
		errs[i] = err
	}
	if err != nil && len(group) > 1 && ctx.Err() == nil {
		// One input's failure is not the others': each alone, so that
		// each is retried, or dead-lettered, for its own sake (one that
		// panics each time would otherwise take its neighbours with it).
		for i, o := range group {
			errs[i] = e.safeApply(ctx, id, []*job{o})
		}
	}
	return errs[0]
}

// safeApply is apply with a panic turned into an error, as the consumer
// turns a handler's: the input is retried like any other failure.
func (e *engine) safeApply(ctx context.Context, id string, jobs []*job) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("applying %d input(s) of saga %s panicked: %v\n%s", len(jobs), id, p, debug.Stack())
		}
	}()
	return e.apply(ctx, id, jobs)
}

// errHolderPanicked is what the inputs of a group hear when applying it
// panicked: each is tried again.
var errHolderPanicked = errors.New("the input applying this one with its own panicked")

// apply applies inputs of saga id, in order, each to the saga as the one
// before left it, and stores the result in one write.
func (e *engine) apply(ctx context.Context, id string, jobs []*job) (err error) {
	// What the saga's last flush here published and has not marked yet
	// goes with this change; given back if the change fails.
	sentRec, sent := e.marks.take(ctx, id)
	defer func() {
		if err != nil {
			e.marks.later(ctx, sentRec, sent)
		}
	}()
	type change struct {
		prev, next saga.Saga
		eff        saga.Effects
	}
attempts:
	for attempt := 1; ; attempt++ {
		// The saga as this instance stored it last, if kept (recent), the
		// first time round; else as the store has it.
		rec, kept := e.recent.get(id)
		if attempt > 1 || !kept {
			kept = false
			var err error
			if rec, err = e.store.Load(ctx, id); err != nil {
				// Not found is retried too: in a cluster a replica may lag
				// a saga just created. An input for a saga that never
				// existed is dead-lettered after its last delivery.
				return err
			}
		}
		cur := rec.Saga
		var msgs []bus.Message
		var entries, ignored []sagastore.Entry
		var changes []change
		for _, j := range jobs {
			next, eff := saga.Apply(cur, j.in)
			if eff.Ignored != "" && kept {
				continue attempts // perhaps only stale: asked again of the store
			}
			if eff.Ignored != "" {
				e.log.Debug("input ignored", "saga", id, "input", j.in.Kind, "why", eff.Ignored)
				if j.in.Kind != saga.InputTick { // stale deadlines are routine, not news
					ignored = append(ignored, j.from.entry(id, 0, j.in.At, eff.Ignored))
				}
				continue
			}
			m, en, err := e.effects(next, eff)
			if err != nil {
				return err
			}
			msgs = append(msgs, m...)
			entries = append(append(entries, j.from.entry(id, next.Seq, j.in.At, "")), en...)
			changes = append(changes, change{cur, next, eff})
			cur = next
		}
		if len(changes) == 0 {
			if len(ignored) > 0 {
				if err := e.store.Record(ctx, ignored); err != nil {
					return err
				}
			}
			published := sent
			sent = nil // flush marks them, or gives them back
			return e.flush(ctx, rec, published, true)
		}
		stored, err := e.store.Update(ctx, rec, cur, sagastore.Change{Outbox: msgs, Audit: append(entries, ignored...), Sent: sent})
		if err != nil {
			e.recent.forget(id)
		}
		if errors.Is(err, sagastore.ErrConflict) && kept {
			continue // the record kept was stale: read the store
		}
		if errors.Is(err, sagastore.ErrConflict) && attempt < maxConflicts {
			e.metrics.conflicts.Inc()
			time.Sleep(time.Duration(rand.IntN(5*attempt)+1) * time.Millisecond)
			continue
		}
		if err != nil {
			return err
		}
		e.recent.put(stored)
		for _, c := range changes {
			e.metrics.transition(c.prev, c.next, c.eff)
			if c.next.State != c.prev.State {
				e.log.Info("saga "+string(c.next.State), "saga", id, "from", c.prev.State, "reason", c.next.Reason, "batch", c.next.Batch)
			}
		}
		sent = nil // marked
		return e.flush(ctx, stored, nil, true)
	}
}

// effects turns a transition's effects into outbox messages and audit
// entries, each message with its deterministic id.
func (e *engine) effects(s saga.Saga, eff saga.Effects) ([]bus.Message, []sagastore.Entry, error) {
	now := e.now()
	var msgs []bus.Message
	var entries []sagastore.Entry
	add := func(subject string, env events.Envelope) error {
		m, err := bus.Encode(subject, env)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
		entries = append(entries, sagastore.Entry{ID: string(sagastore.Out) + "/" + env.ID, Saga: s.ID, Seq: s.Seq,
			At: now, Direction: sagastore.Out, Type: env.Type, Subject: subject, Event: m.Data})
		return nil
	}
	for _, c := range eff.Commands {
		env, err := events.New(c.Step, events.TypeCommand, e.source, s.ID, c.Attempt, now, c)
		if err != nil {
			return nil, nil, err
		}
		if err := add(events.CommandSubject(c.Phase, c.Action, c.Target), env); err != nil {
			return nil, nil, err
		}
	}
	for i, ev := range eff.Events {
		env, err := events.New(events.SagaEventID(s.ID, s.Seq, i, ev.Kind), events.TypeSaga, e.source, s.ID, 0, now, ev)
		if err != nil {
			return nil, nil, err
		}
		if err := add(events.SagaSubject(s.ID, ev.Kind), env); err != nil {
			return nil, nil, err
		}
	}
	for j, due := range eff.Wake {
		n := s.Wakes - len(eff.Wake) + j + 1
		env, err := events.New(fmt.Sprintf("%s/timer/%d", s.ID, n), events.TypeTimer, e.source, s.ID, 0, now,
			events.Timer{Saga: s.ID, Due: due, N: n})
		if err != nil {
			return nil, nil, err
		}
		m, err := bus.Schedule(events.TimerScheduleSubject(s.ID, n), events.TimerFireSubject(s.ID), due, env)
		if err != nil {
			return nil, nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, entries, nil
}

// flushStored publishes what a saga has pending as the store has it now.
func (e *engine) flushStored(ctx context.Context, id string) error {
	rec, err := e.store.Load(ctx, id)
	if err != nil {
		return err
	}
	return e.flush(ctx, rec, nil, true)
}

// flush publishes everything rec has pending, in order, and marks it sent:
// at once, or (later, unless the saga has ended) with the saga's next
// change if that comes soon (marks). While it publishes, the saga's next
// input waits (up to the mark delay) to take the mark (marks.take). rec is
// the saga as just loaded or stored, so nothing is read again. Messages
// known to be published already (sent, or a mark deferred here) are not
// published again, only marked. Publishing twice is
// harmless all the same: every message has its id. The messages go out
// together (bus.SendAll), each with its ack awaited after the last is
// sent, not one round trip each.
func (e *engine) flush(ctx context.Context, rec sagastore.Record, sent []string, later bool) error {
	id := rec.Saga.ID
	deferred, done := e.marks.publishing(ctx, id)
	var marked []string // published, to be marked later
	defer func() { done(ctx, rec, marked) }()
	sent = union(sent, deferred)
	if len(rec.Pending) == 0 {
		return nil
	}
	ids := make([]string, 0, len(rec.Pending))
	msgs := make([]bus.Message, 0, len(rec.Pending))
	var published []string // of those pending
	for _, m := range rec.Pending {
		if slices.Contains(sent, m.ID) {
			published = append(published, m.ID)
		}
	}
	for _, m := range rec.Pending {
		ids = append(ids, m.ID)
		if slices.Contains(published, m.ID) {
			continue
		}
		// A command whose target lost its service is answered with its
		// failure instead; marked sent all the same.
		refused, err := e.refusal(ctx, e.registry, m)
		if err != nil {
			marked = published
			return fmt.Errorf("flush saga %s: %w", id, err)
		}
		if refused != nil {
			m = *refused
		}
		msgs = append(msgs, m)
	}
	if err := bus.SendAll(ctx, e.js, msgs); err != nil {
		marked = published
		return fmt.Errorf("flush saga %s: %w", id, err)
	}
	// An ended saga's next input is rare (a late or redelivered report):
	// its mark would only wait for the timer.
	if later && !rec.Saga.State.Terminal() {
		marked = ids
	} else {
		e.markSent(ctx, rec, ids)
	}
	return nil
}

// relay publishes what transitions left pending (after a crash between
// storing and publishing, for sagas no new input will touch), and ticks the
// sagas whose deadline passed more than grace ago unhandled. Only the
// instance holding the lease does, if there is one.
func (e *engine) relay(ctx context.Context, interval, grace time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	skipped := skipLog{log: e.log, last: map[string]string{}, metrics: e.metrics}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if !e.metrics.leading() {
			continue
		}
		e.overdue(ctx, grace, skipped)
		recs, err := e.store.Unsent(ctx, 100)
		err = skipped.note("relay", err)
		if err != nil {
			e.log.Warn("relay: cannot list the outbox", "err", err)
			continue
		}
		for _, r := range recs {
			if err := e.flush(ctx, r, nil, false); err != nil {
				e.log.Warn("relay: cannot flush", "saga", r.Saga.ID, "err", err)
			}
		}
	}
}

// skipLog logs the sagas a listing of the relay's skipped because they
// cannot be decoded: when the set changes, not at every pass (the gauge
// upshift_coordinator_unreadable_sagas says it always). Inputs for such a
// saga fail and end dead-lettered; an operator repairs or deletes it.
type skipLog struct {
	log     *slog.Logger
	last    map[string]string // listing -> the sagas it last skipped
	metrics *Metrics
}

// note logs what err says was skipped and returns any other error: the
// relay and the sweep go on with the sagas they could read.
func (l skipLog) note(what string, err error) error {
	ids, err := sagastore.Skipped(err)
	if err != nil {
		return err
	}
	l.metrics.skipped(what, ids)
	now, before := strings.Join(ids, ","), l.last[what]
	l.last[what] = now
	switch {
	case now == before:
	case now != "":
		l.log.Error(what+": skipping sagas that cannot be decoded; repair or delete them", "sagas", ids)
	default:
		l.log.Info(what + ": no saga skipped as undecodable any more")
	}
	return nil
}

// overdue ticks the sagas whose deadline passed more than grace ago without
// its timer being handled: a timer message dead-lettered while the store was
// down, or dropped by the TIMERS stream. Without it such a saga would wait
// for ever. Several instances may sweep at once: the tick is an input like
// any other, applied once.
func (e *engine) overdue(ctx context.Context, grace time.Duration, skipped skipLog) {
	now := e.now()
	due, err := e.store.List(ctx, sagastore.Filter{Active: true, DueBefore: now.Add(-grace), Limit: 100})
	err = skipped.note("sweep", err)
	if err != nil {
		e.log.Warn("sweep: cannot list overdue sagas", "err", err)
		return
	}
	for _, s := range due {
		env, err := events.New(fmt.Sprintf("%s/overdue/%s", s.ID, s.Deadline.Format(time.RFC3339Nano)), events.TypeTimer,
			e.source, s.ID, 0, now, events.Timer{Saga: s.ID, Due: s.Deadline})
		if err != nil {
			continue
		}
		raw, err := events.Encode(env)
		if err != nil {
			continue
		}
		e.log.Warn("deadline overdue: its timer was not handled; ticking the saga", "saga", s.ID, "deadline", s.Deadline)
		e.metrics.overdue.Inc()
		if err := e.handle(ctx, s.ID, saga.Input{Kind: saga.InputTick, At: now}, seen{env: env, subject: "sweep", raw: raw}); err != nil {
			e.log.Warn("sweep: cannot tick", "saga", s.ID, "err", err)
		}
	}
}
