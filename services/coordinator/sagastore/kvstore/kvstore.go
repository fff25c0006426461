// Package kvstore keeps sagas in a JetStream key-value bucket: the embedded
// default, needing nothing but NATS.
//
// One key per saga holds a document with the saga and its outbox messages not
// yet sent; a bucket holds no transaction across keys, so the outbox lives in
// the document and is written by the same compare-and-set. Audit entries go
// through that outbox to the AUDIT stream, one subject per saga; History reads
// that subject and adds the entries still waiting in the document.
//
// A finished saga, once its outbox is sent, moves to an archive bucket
// (SagasArchiveBucket, whose TTL is the retention, WithArchiveMaxAge): the
// live bucket holds the sagas in flight and little else, so listing active
// sagas, the relay's search for unsent messages, the overdue sweep and the
// in-flight count read live keys only. Load and History fall back to the
// archive; List reads it too when the filter asks for ended sagas. Both
// listings still read every key of their bucket: fine for the sagas in
// flight, and for the archive of a team; for SQL over years of sagas, use
// pgstore. The move leaves a delete marker in the live bucket, which
// listings read (its headers only): removing it while a watcher starts
// would leave the watcher waiting for a message that no longer exists.
//
// A document must fit in one NATS message (the server's max_payload, 1 MiB
// unless configured). A document that would not keeps its steps without
// their reports and outputs (those stay in EVENTS and in the audit log); one
// that still would not is refused with sagastore.ErrTooLarge. The store
// takes sagas of up to MaxTargets targets (sagastore.Sized): a document
// holds every step of every target.
package kvstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// Store is a sagastore.Store over JetStream KV.
type Store struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue // sagas in flight
	archive jetstream.KeyValue // sagas ended, their outbox sent
	limit   int                // bytes of a document
}

// DefaultArchiveMaxAge is how long a finished saga is kept by default.
const DefaultArchiveMaxAge = 30 * 24 * time.Hour

// Option configures Open.
type Option func(*options)

type options struct{ archiveMaxAge time.Duration }

// WithArchiveMaxAge sets how long a finished saga stays in the archive
// (default DefaultArchiveMaxAge; the bucket has one TTL, so every
// coordinator of a store must say the same).
func WithArchiveMaxAge(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.archiveMaxAge = d
		}
	}
}

// document is what one key holds.
type document struct {
	Saga    saga.Saga     `json:"saga"`
	Pending []bus.Message `json:"pending,omitempty"`
}

const keyPrefix = "saga."

func key(id string) string { return keyPrefix + id }

// Open provisions the buckets and the AUDIT stream and returns the store.
func Open(ctx context.Context, js jetstream.JetStream, c streams.Config, opts ...Option) (*Store, error) {
	o := options{archiveMaxAge: DefaultArchiveMaxAge}
	for _, opt := range opts {
		opt(&o)
	}
	kv, err := streams.EnsureBucket(ctx, js, c, streams.SagasBucket, 0)
	if err != nil {
		return nil, err
	}
	archive, err := streams.EnsureBucket(ctx, js, c, streams.SagasArchiveBucket, o.archiveMaxAge)
	if err != nil {
		return nil, err
	}
	if err := streams.Ensure(ctx, js, c, events.StreamAudit); err != nil {
		return nil, err
	}
	// Leave room for the headers of the message that carries a document.
	return &Store{js: js, kv: kv, archive: archive, limit: int(js.Conn().MaxPayload()) - 4<<10}, nil
}

// Create implements sagastore.Store.
func (s *Store) Create(ctx context.Context, sg saga.Saga, ch sagastore.Change) (sagastore.Record, error) {
	d := document{Saga: sg, Pending: outbox(ch)}
	b, err := s.encode(d)
	if err != nil {
		return sagastore.Record{}, err
	}
	// A request redelivered after its saga ended must not start it again.
	if _, err := s.archive.Get(ctx, key(sg.ID)); err == nil {
		return sagastore.Record{}, fmt.Errorf("create saga %s: %w (ended, archived)", sg.ID, sagastore.ErrExists)
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return sagastore.Record{}, fmt.Errorf("create saga %s: %w", sg.ID, err)
	}
	rev, err := s.kv.Create(ctx, key(sg.ID), b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return sagastore.Record{}, fmt.Errorf("create saga %s: %w", sg.ID, sagastore.ErrExists)
	}
	if err != nil {
		return sagastore.Record{}, fmt.Errorf("create saga %s: %w", sg.ID, err)
	}
	return record(d, sagastore.Revision(rev), false), nil
}

func record(d document, rev sagastore.Revision, archived bool) sagastore.Record {
	return sagastore.Record{Saga: d.Saga, Revision: rev, Pending: d.Pending, Archived: archived}
}

// Load implements sagastore.Store: a saga not in flight is looked for in
// the archive.
func (s *Store) Load(ctx context.Context, id string) (sagastore.Record, error) {
	d, rev, err := s.get(ctx, id)
	if errors.Is(err, sagastore.ErrNotFound) {
		d, rev, err = s.getFrom(ctx, s.archive, id)
		return record(d, rev, true), err
	}
	return record(d, rev, false), err
}

// get reads a saga in flight.
func (s *Store) get(ctx context.Context, id string) (document, sagastore.Revision, error) {
	return s.getFrom(ctx, s.kv, id)
}

func (s *Store) getFrom(ctx context.Context, kv jetstream.KeyValue, id string) (document, sagastore.Revision, error) {
	var d document
	e, err := kv.Get(ctx, key(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return d, 0, fmt.Errorf("load saga %s: %w", id, sagastore.ErrNotFound)
	}
	if err != nil {
		return d, 0, fmt.Errorf("load saga %s: %w", id, err)
	}
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		return d, 0, &sagastore.UnreadableError{IDs: []string{id}, Err: err}
	}
	return d, sagastore.Revision(e.Revision()), nil
}

// Update implements sagastore.Store. The messages from had pending are
// kept ahead of the new ones, so the outbox stays in order: the write is
// made at from's revision, so they are what the saga had pending then.
func (s *Store) Update(ctx context.Context, from sagastore.Record, sg saga.Saga, ch sagastore.Change) (sagastore.Record, error) {
	if from.Archived {
		return s.revive(ctx, from, sg, ch)
	}
	d := document{Saga: sg, Pending: append(ch.Unsent(from.Pending), outbox(ch)...)}
	rev, err := s.put(ctx, d, from.Revision)
	if err != nil {
		return sagastore.Record{}, err
	}
	s.retireIfDone(ctx, d, rev)
	return record(d, rev, false), nil
}

// retireIfDone moves an ended saga left with nothing pending to the
// archive, as Sent does when it marks the last message (a change may mark
// it too, Change.Sent). If that fails, the relay's next Unsent does it;
// the record its caller holds then finds the saga moved (a conflict) and
// reloads it.
func (s *Store) retireIfDone(ctx context.Context, d document, rev sagastore.Revision) {
	if len(d.Pending) == 0 && d.Saga.State.Terminal() {
		_ = s.retire(ctx, d, rev)
	}
}

// revive updates an archived saga, loaded at from's revision from the
// archive: an ended saga still records what comes late (a result after its
// step timed out, a run reported after the saga ended). The new version
// goes back to the live bucket, with its outbox, and moves to the archive
// again once that is sent; the archived copy is deleted at the revision
// read (if that fails, the leader's next pass finishes the move, as after
// a crash).
func (s *Store) revive(ctx context.Context, from sagastore.Record, sg saga.Saga, ch sagastore.Change) (sagastore.Record, error) {
	d, cur, err := s.getFrom(ctx, s.archive, sg.ID)
	if errors.Is(err, sagastore.ErrNotFound) {
		// Gone from the archive since it was read: revived by another
		// update, which a reload finds live.
		return sagastore.Record{}, fmt.Errorf("update archived saga %s: %w (no longer archived)", sg.ID, sagastore.ErrConflict)
	}
	if err != nil {
		return sagastore.Record{}, err
	}
	if cur != from.Revision {
		return sagastore.Record{}, fmt.Errorf("update archived saga %s at revision %d (now %d): %w", sg.ID, from.Revision, cur, sagastore.ErrConflict)
	}
	d = document{Saga: sg, Pending: append(ch.Unsent(d.Pending), outbox(ch)...)}
	b, err := s.encode(d)
	if err != nil {
		return sagastore.Record{}, err
	}
	next, err := s.kv.Create(ctx, key(sg.ID), b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return sagastore.Record{}, fmt.Errorf("update archived saga %s: %w (revived by another instance)", sg.ID, sagastore.ErrConflict)
	}
	if err != nil {
		return sagastore.Record{}, fmt.Errorf("update archived saga %s: %w", sg.ID, err)
	}
	_ = s.archive.Delete(ctx, key(sg.ID), jetstream.LastRevision(uint64(cur)))
	s.retireIfDone(ctx, d, sagastore.Revision(next))
	return record(d, sagastore.Revision(next), false), nil
}

func (s *Store) put(ctx context.Context, d document, rev sagastore.Revision) (sagastore.Revision, error) {
	b, err := s.encode(d)
	if err != nil {
		return 0, err
	}
	next, err := s.kv.Update(ctx, key(d.Saga.ID), b, uint64(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("update saga %s at revision %d: %w", d.Saga.ID, rev, sagastore.ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("update saga %s: %w", d.Saga.ID, err)
	}
	return sagastore.Revision(next), nil
}

// Record implements sagastore.Store: entries go straight to the AUDIT
// stream, de-duplicated by their ids.
func (s *Store) Record(ctx context.Context, entries []sagastore.Entry) error {
	for _, m := range outbox(sagastore.Change{Audit: entries}) {
		if err := bus.Send(ctx, s.js, m); err != nil {
			return fmt.Errorf("record audit: %w", err)
		}
	}
	return nil
}

// Sent implements sagastore.Store. A saga that ended and has nothing left
// to send moves to the archive. The first try writes at rec's revision
// without reading the saga; if it moved on, it is read again.
func (s *Store) Sent(ctx context.Context, rec sagastore.Record, msgIDs []string) error {
	if rec.Archived {
		return nil // an archived saga has nothing pending
	}
	d, rev := document{Saga: rec.Saga, Pending: rec.Pending}, rec.Revision
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			var err error
			d, rev, err = s.get(ctx, rec.Saga.ID)
			if errors.Is(err, sagastore.ErrNotFound) {
				if _, _, aerr := s.getFrom(ctx, s.archive, rec.Saga.ID); aerr == nil {
					return nil // archived by another flush: nothing was pending
				}
			}
			if err != nil {
				return err
			}
		}
		kept := slices.DeleteFunc(slices.Clone(d.Pending), func(m bus.Message) bool { return slices.Contains(msgIDs, m.ID) })
		if len(kept) == len(d.Pending) {
			return nil
		}
		d.Pending = kept
		var err error
		if len(kept) == 0 && d.Saga.State.Terminal() {
			err = s.retire(ctx, d, rev)
		} else {
			_, err = s.put(ctx, d, rev)
		}
		if !errors.Is(err, sagastore.ErrConflict) || attempt == 10 {
			return err
		}
	}
}

// retire moves an ended saga with nothing pending from the live bucket to
// the archive: written there first, then deleted here at the revision read,
// so a saga is always in one or the other. A crash in between leaves it in
// both; Load reads the live copy, and the relay's next Unsent retires it.
func (s *Store) retire(ctx context.Context, d document, rev sagastore.Revision) error {
	b, err := s.encode(d)
	if err != nil {
		return err
	}
	if _, err := s.archive.Put(ctx, key(d.Saga.ID), b); err != nil {
		return fmt.Errorf("archive saga %s: %w", d.Saga.ID, err)
	}
	err = s.kv.Delete(ctx, key(d.Saga.ID), jetstream.LastRevision(uint64(rev)))
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("archive saga %s at revision %d: %w", d.Saga.ID, rev, sagastore.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("archive saga %s: %w", d.Saga.ID, err)
	}
	return nil
}

// MaxTargets is the most targets a saga kept in this store may have: a
// 200-target saga is some 400 KB, and grows with retries and roll-backs.
const MaxTargets = 200

// MaxTargets implements sagastore.Sized.
func (s *Store) MaxTargets() int { return MaxTargets }

// Unsent implements sagastore.Store by reading every saga in flight. An
// ended saga with nothing pending found there (its move to the archive
// interrupted) is moved on the way.
func (s *Store) Unsent(ctx context.Context, limit int) ([]sagastore.Record, error) {
	var out []sagastore.Record
	err := s.each(ctx, s.kv, func(d document, rev sagastore.Revision) bool {
		if len(d.Pending) > 0 {
			out = append(out, record(d, rev, false))
		} else if d.Saga.State.Terminal() {
			_ = s.retire(ctx, d, rev) // a conflict: the next pass
		}
		return len(out) < limit
	})
	return out, err
}

// List implements sagastore.Store by reading every saga in flight, and
// every archived one if the filter may select an ended saga.
func (s *Store) List(ctx context.Context, f sagastore.Filter) ([]sagastore.Summary, error) {
	var out []sagastore.Summary
	seen := map[string]bool{}
	add := func(d document, _ sagastore.Revision) bool {
		if sum := sagastore.Summarize(d.Saga); !seen[sum.ID] && f.Match(sum) {
			seen[sum.ID] = true
			out = append(out, sum)
		}
		return true
	}
	err := s.each(ctx, s.kv, add)
	if err == nil || errors.Is(err, sagastore.ErrUnreadable) {
		if endedToo(f) {
			bad := &sagastore.UnreadableError{}
			_ = bad.Add(err)
			if aerr := bad.Add(s.each(ctx, s.archive, add)); aerr != nil {
				err = aerr
			} else {
				err = bad.OrNil()
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	limit := f.Limit
	if limit <= 0 {
		limit = sagastore.DefaultLimit
	}
	return out[:min(len(out), limit)], err
}

// endedToo says whether a filter may select an ended saga.
func endedToo(f sagastore.Filter) bool {
	if f.Active || !f.DueBefore.IsZero() { // an ended saga waits for nothing
		return false
	}
	if len(f.States) == 0 {
		return true
	}
	return slices.ContainsFunc(f.States, saga.State.Terminal)
}

func (s *Store) each(ctx context.Context, kv jetstream.KeyValue, fn func(document, sagastore.Revision) bool) error {
	keys, err := kv.ListKeysFiltered(ctx, keyPrefix+">")
	if err != nil {
		return fmt.Errorf("list sagas: %w", err)
	}
	defer keys.Stop()
	// A saga that cannot be decoded is skipped whatever the filter: what
	// it would have said is unknown.
	var bad sagastore.UnreadableError
	for k := range keys.Keys() {
		d, rev, err := s.getFrom(ctx, kv, strings.TrimPrefix(k, keyPrefix))
		if errors.Is(err, sagastore.ErrNotFound) {
			continue // deleted since listed
		}
		if err := bad.Add(err); err != nil {
			return err
		}
		if err == nil && !fn(d, rev) {
			break
		}
	}
	return bad.OrNil()
}

// CountActive implements sagastore.Store. The bucket has no index, so every
// saga is read, but in one pass: a watch delivers the last value of every
// key as one stream of messages rather than a get per key, and only the
// saga's state is decoded.
func (s *Store) CountActive(ctx context.Context) (map[saga.State]int, error) {
	w, err := s.kv.Watch(ctx, keyPrefix+">", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("count sagas: %w", err)
	}
	defer func() { _ = w.Stop() }()
	out := map[saga.State]int{}
	var bad sagastore.UnreadableError
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("count sagas: %w", ctx.Err())
		case e = <-w.Updates():
		}
		if e == nil { // every key's last value has been delivered
			return out, bad.OrNil()
		}
		var d struct {
			Saga struct {
				State saga.State `json:"state"`
			} `json:"saga"`
		}
		if err := json.Unmarshal(e.Value(), &d); err != nil || d.Saga.State == "" {
			if err == nil {
				err = errors.New("no state")
			}
			_ = bad.Add(&sagastore.UnreadableError{IDs: []string{strings.TrimPrefix(e.Key(), keyPrefix)}, Err: err})
			continue
		}
		if !d.Saga.State.Terminal() {
			out[d.Saga.State]++
		}
	}
}

// emptyPulls bounds the pulls in a row that bring nothing in History.
const emptyPulls = 10

// History implements sagastore.Store.
func (s *Store) History(ctx context.Context, id string) ([]sagastore.Entry, error) {
	d, err := s.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	out, seen := []sagastore.Entry{}, map[string]bool{}
	// An entry that cannot be decoded is shown as unreadable, in its place:
	// anyone may publish on the subject, and one bad message must not hide
	// the rest of the log.
	add := func(data []byte, seq uint64, at time.Time) {
		entries, err := decodeAudit(data)
		if err != nil {
			entries = []sagastore.Entry{{ID: fmt.Sprintf("unreadable/%d", seq), Saga: id, At: at, Direction: sagastore.Unreadable,
				Note: fmt.Sprintf("audit message %d cannot be decoded: %v", seq, err)}}
		}
		for _, e := range entries {
			if !seen[e.ID] {
				seen[e.ID] = true
				out = append(out, e)
			}
		}
	}
	// An ephemeral consumer per call, removed once read: a dashboard polling
	// a saga must not leave one behind each time. The threshold is for a
	// caller that dies before the removal.
	c, err := s.js.OrderedConsumer(ctx, events.StreamAudit, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.AuditSubject(id)}, InactiveThreshold: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("read audit of %s: %w", id, err)
	}
	defer func() {
		if info := c.CachedInfo(); info != nil {
			_ = s.js.DeleteConsumer(context.WithoutCancel(ctx), events.StreamAudit, info.Name)
		}
	}()
	info, err := c.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read audit of %s: %w", id, err)
	}
	// On a cluster, a consumer just made may not take its first pull yet
	// (no responders): a pull that brings nothing is tried again, a few
	// times, before the reading fails (one History in a hundred failed so).
	empty := 0
	for left := info.NumPending; left > 0; {
		batch, err := c.Fetch(int(min(left, 500)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("read audit of %s: %w", id, err)
		}
		n := 0
		for m := range batch.Messages() {
			var seq uint64
			var at time.Time
			if meta, err := m.Metadata(); err == nil {
				seq, at = meta.Sequence.Stream, meta.Timestamp
			}
			add(m.Data(), seq, at)
			n++
		}
		if n == 0 {
			if empty++; empty < emptyPulls {
				select {
				case <-ctx.Done():
					return nil, fmt.Errorf("read audit of %s: %w", id, ctx.Err())
				case <-time.After(time.Duration(empty) * 20 * time.Millisecond):
				}
				continue
			}
			return nil, fmt.Errorf("read audit of %s: %d entries pending, none delivered (%v)", id, left, batch.Error())
		}
		empty = 0
		left -= uint64(n)
	}
	for _, m := range d.Pending {
		if m.Subject == events.AuditSubject(id) {
			add(m.Data, 0, time.Time{})
		}
	}
	return out, nil
}

// outbox turns a change into the messages the document keeps: the outbox,
// then the audit entries bound for the AUDIT stream, together in one
// message (or a few, auditMessageBytes each at most): a transition's
// entries are written and read together, and a message each would double
// what a saga writes to JetStream. A message's id is its first entry's, so
// an input recorded alone later (ignored as a duplicate) is dropped as a
// duplicate of the message that recorded it first.
func outbox(ch sagastore.Change) []bus.Message {
	out := slices.Clone(ch.Outbox)
	var batch []json.RawMessage
	var first sagastore.Entry
	size := 0
	cut := func() {
		if len(batch) == 0 {
			return
		}
		b, _ := json.Marshal(batch) // raw entries always marshal
		out = append(out, bus.Message{ID: "audit/" + first.ID, Subject: events.AuditSubject(first.Saga), Data: b})
		batch, size = nil, 0
	}
	for _, e := range ch.Audit {
		b, _ := json.Marshal(e) // an Entry always marshals
		if len(batch) > 0 && (size+len(b) > auditMessageBytes || e.Saga != first.Saga) {
			cut()
		}
		if len(batch) == 0 {
			first = e
		}
		batch, size = append(batch, b), size+len(b)
	}
	cut()
	return out
}

// auditMessageBytes is the size past which a transition's audit entries
// take another message: a transition that dispatches a batch of hundreds of
// commands has an entry for each.
const auditMessageBytes = 256 << 10

// decodeAudit reads an audit message: the entries of one transition (a
// JSON array), or one entry (as earlier versions wrote them, one a
// message).
func decodeAudit(data []byte) ([]sagastore.Entry, error) {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '[' {
		var entries []sagastore.Entry
		if err := json.Unmarshal(data, &entries); err != nil {
			return nil, err
		}
		return entries, nil
	}
	var e sagastore.Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, err
	}
	return []sagastore.Entry{e}, nil
}

// encode marshals a document that fits in a message, dropping the steps'
// reports and outputs if that is what it takes.
func (s *Store) encode(d document) ([]byte, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode saga %s: %w", d.Saga.ID, err)
	}
	if len(b) <= s.limit {
		return b, nil
	}
	steps := make([]*saga.Step, len(d.Saga.Steps)) // copies: the steps are shared
	for i, st := range d.Saga.Steps {
		c := *st
		c.Report, c.Output = nil, nil
		steps[i] = &c
	}
	d.Saga.Steps = steps
	if b, err = json.Marshal(d); err != nil {
		return nil, fmt.Errorf("encode saga %s: %w", d.Saga.ID, err)
	}
	if len(b) > s.limit {
		return nil, fmt.Errorf("saga %s is %d bytes, the server takes %d in one message; raise max_payload or use the postgres store: %w",
			d.Saga.ID, len(b), s.limit, sagastore.ErrTooLarge)
	}
	return b, nil
}
