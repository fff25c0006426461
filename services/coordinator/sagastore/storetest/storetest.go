// Package storetest is the conformance suite of sagastore.Store: every store
// runs it from its own tests, against a real backend.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// Harness is a fresh, empty store and a JetStream context on a server with
// every upshift stream, for publishing what the store holds.
//
// Harness builders take a testing.TB so benchmarks use them too.
type Harness struct {
	Store sagastore.Store
	JS    jetstream.JetStream
	// Spoil overwrites a stored saga, behind the store's back, with a
	// document of the right syntax that this version cannot decode.
	Spoil func(t testing.TB, id string)
}

// Run runs the suite, each test in parallel with the others; open returns a
// fresh harness for each test.
func Run(t *testing.T, open func(t testing.TB) Harness) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"CreateAndLoad", testCreateAndLoad},
		{"CreateTwiceConflicts", testCreateTwice},
		{"LoadMissing", testLoadMissing},
		{"UpdateIsCompareAndSet", testUpdateCAS},
		{"ConcurrentUpdatersLoseNothing", testConcurrent},
		{"OutboxKeepsOrderUntilSent", testOutbox},
		{"UnsentFindsEverySagaWithPendingMessages", testUnsent},
		{"ListFilters", testList},
		{"CountActiveByState", testCountActive},
		{"AnUnreadableSagaHidesOnlyItself", testUnreadable},
		{"HistoryKeepsEveryEntryOnceInOrder", testHistory},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// Saga returns a started saga with the given id and request details.
func Saga(id, team, env, to string, created time.Time) (saga.Saga, saga.Effects) {
	req := spec.Request{
		APIVersion: spec.APIVersion, Kind: spec.KindUpgrade,
		Metadata: spec.Metadata{Team: team, Environment: env},
		Spec: spec.Spec{Software: "app", From: "1.0", To: to, Targets: []string{"a", "b"},
			Artifact: spec.Artifact{URL: "file:///a.tgz", Digest: "sha256:" + strings.Repeat(to[:1], 64)}},
	}.WithDefaults()
	return saga.Apply(saga.New(id, req, saga.Options{}, created), saga.Input{Kind: saga.InputStart, At: created})
}

func msg(id string) bus.Message {
	return bus.Message{ID: id, Subject: "upshift.evt.x.saga.test", Data: []byte(`{"id":"` + id + `"}`)}
}

func entry(sagaID, id string, dir sagastore.Direction, seq int) sagastore.Entry {
	return sagastore.Entry{ID: string(dir) + "/" + id, Saga: sagaID, Seq: seq, At: t0.Add(time.Duration(seq) * time.Second),
		Direction: dir, Type: "io.upshift.test", Subject: "upshift.evt." + sagaID + ".saga.test",
		Event: json.RawMessage(`{"id":"` + id + `"}`)}
}

// outboxIDs returns the ids of the pending messages a store holds for the
// outbox (a store may keep its own messages there too, on audit subjects).
func outboxIDs(r sagastore.Record) []string {
	var ids []string
	for _, m := range r.Pending {
		if !strings.HasPrefix(m.Subject, "upshift.audit.") {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

func testCreateAndLoad(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := Saga("s1", "payments", "test", "2.0", t0)
	created, err := h.Store.Create(ctx, s, sagastore.Change{Outbox: []bus.Message{msg("m1"), msg("m2")},
		Audit: []sagastore.Entry{entry("s1", "e1", sagastore.In, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.Store.Load(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Revision != created.Revision {
		t.Fatalf("revision %d, created at %d", r.Revision, created.Revision)
	}
	// What Create returns is what a Load then finds pending: the caller
	// publishes it without reading the saga again.
	if !slices.Equal(outboxIDs(created), outboxIDs(r)) {
		t.Fatalf("created with %v pending, loaded with %v", outboxIDs(created), outboxIDs(r))
	}
	want, _ := json.Marshal(s)
	got, _ := json.Marshal(r.Saga)
	if string(got) != string(want) {
		t.Fatalf("loaded saga differs:\n got %s\nwant %s", got, want)
	}
	if ids := outboxIDs(r); !slices.Equal(ids, []string{"m1", "m2"}) {
		t.Fatalf("pending %v", ids)
	}
	if string(r.Pending[0].Data) != `{"id":"m1"}` || r.Pending[0].Subject != "upshift.evt.x.saga.test" {
		t.Fatalf("pending message %+v", r.Pending[0])
	}
}

func testCreateTwice(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := Saga("s1", "payments", "test", "2.0", t0)
	if _, err := h.Store.Create(ctx, s, sagastore.Change{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Store.Create(ctx, s, sagastore.Change{Outbox: []bus.Message{msg("m9")}}); !errors.Is(err, sagastore.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	if r, _ := h.Store.Load(ctx, "s1"); len(outboxIDs(r)) != 0 {
		t.Fatalf("refused create wrote its outbox: %v", outboxIDs(r))
	}
}

func testLoadMissing(t *testing.T, h Harness) {
	if _, err := h.Store.Load(context.Background(), "nope"); !errors.Is(err, sagastore.ErrNotFound) {
		t.Fatalf("err %v", err)
	}
	if _, err := h.Store.History(context.Background(), "nope"); !errors.Is(err, sagastore.ErrNotFound) {
		t.Fatalf("history err %v", err)
	}
}

func testUpdateCAS(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := Saga("s1", "payments", "test", "2.0", t0)
	rev0, err := h.Store.Create(ctx, s, sagastore.Change{})
	if err != nil {
		t.Fatal(err)
	}
	s.Reason = "first"
	rev1, err := h.Store.Update(ctx, rev0, s, sagastore.Change{Outbox: []bus.Message{msg("m1")}})
	if err != nil {
		t.Fatal(err)
	}
	if rev1.Revision == rev0.Revision {
		t.Fatal("revision did not change")
	}
	s.Reason = "stale"
	if _, err := h.Store.Update(ctx, rev0, s, sagastore.Change{Outbox: []bus.Message{msg("m2")},
		Audit: []sagastore.Entry{entry("s1", "stale", sagastore.In, 2)}}); !errors.Is(err, sagastore.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	r, _ := h.Store.Load(ctx, "s1")
	if r.Saga.Reason != "first" || r.Revision != rev1.Revision || !slices.Equal(outboxIDs(r), []string{"m1"}) {
		t.Fatalf("after refused update: reason %q rev %d pending %v", r.Saga.Reason, r.Revision, outboxIDs(r))
	}
	hist, _ := h.Store.History(ctx, "s1")
	for _, e := range hist {
		if e.ID == "in/stale" {
			t.Fatal("refused update wrote its audit entry")
		}
	}
	missing, _ := Saga("s2", "payments", "test", "2.0", t0)
	if _, err := h.Store.Update(ctx, sagastore.Record{Saga: missing, Revision: 1}, missing, sagastore.Change{}); !errors.Is(err, sagastore.ErrNotFound) && !errors.Is(err, sagastore.ErrConflict) {
		t.Fatalf("update of a missing saga: %v", err)
	}
}

func testConcurrent(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := Saga("s1", "payments", "test", "2.0", t0)
	if _, err := h.Store.Create(ctx, s, sagastore.Change{}); err != nil {
		t.Fatal(err)
	}
	const workers, each = 6, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	conflicts := 0
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				for {
					r, err := h.Store.Load(ctx, "s1")
					if err != nil {
						t.Error(err)
						return
					}
					r.Saga.Seq++
					id := fmt.Sprintf("w%d-%d", w, i)
					_, err = h.Store.Update(ctx, r, r.Saga, sagastore.Change{Outbox: []bus.Message{msg(id)}})
					if errors.Is(err, sagastore.ErrConflict) {
						mu.Lock()
						conflicts++
						mu.Unlock()
						continue
					}
					if err != nil {
						t.Error(err)
					}
					break
				}
			}
		})
	}
	wg.Wait()
	r, _ := h.Store.Load(ctx, "s1")
	if r.Saga.Seq != s.Seq+workers*each {
		t.Fatalf("seq %d, want %d: an update was lost", r.Saga.Seq, s.Seq+workers*each)
	}
	if n := len(outboxIDs(r)); n != workers*each {
		t.Fatalf("%d pending messages, want %d", n, workers*each)
	}
	t.Logf("%d conflicts resolved by reloading", conflicts)
}

func testOutbox(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := Saga("s1", "payments", "test", "2.0", t0)
	created, _ := h.Store.Create(ctx, s, sagastore.Change{Outbox: []bus.Message{msg("a"), msg("b")}})
	updated, err := h.Store.Update(ctx, created, s, sagastore.Change{Outbox: []bus.Message{msg("c")}})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := h.Store.Load(ctx, "s1")
	if !slices.Equal(outboxIDs(r), []string{"a", "b", "c"}) || !slices.Equal(outboxIDs(updated), outboxIDs(r)) {
		t.Fatalf("pending %v, Update said %v", outboxIDs(r), outboxIDs(updated))
	}
	if err := h.Store.Sent(ctx, updated, []string{"a", "c", "unknown"}); err != nil {
		t.Fatal(err)
	}
	r, _ = h.Store.Load(ctx, "s1")
	if !slices.Equal(outboxIDs(r), []string{"b"}) {
		t.Fatalf("pending after sent %v", outboxIDs(r))
	}
	if err := h.Store.Sent(ctx, r, []string{"a"}); err != nil {
		t.Fatalf("marking twice: %v", err)
	}
	// Marked through a record the saga has moved on from: the store reads
	// it again, and keeps what was added since.
	s.Reason = "moved on"
	if _, err := h.Store.Update(ctx, r, s, sagastore.Change{Outbox: []bus.Message{msg("d")}}); err != nil {
		t.Fatal(err)
	}
	if err := h.Store.Sent(ctx, r, []string{"b"}); err != nil {
		t.Fatal(err)
	}
	r, _ = h.Store.Load(ctx, "s1")
	if r.Saga.Reason != "moved on" || !slices.Equal(outboxIDs(r), []string{"d"}) {
		t.Fatalf("after marking through a stale record: reason %q, pending %v", r.Saga.Reason, outboxIDs(r))
	}
	// Marked with the next change: gone from what it returns, what a load
	// finds and what the relay lists; the others kept, in order.
	if _, err := h.Store.Update(ctx, r, s, sagastore.Change{Outbox: []bus.Message{msg("e"), msg("f")}}); err != nil {
		t.Fatal(err)
	}
	r, _ = h.Store.Load(ctx, "s1")
	s.Reason = "marked with a change"
	updated, err = h.Store.Update(ctx, r, s, sagastore.Change{Outbox: []bus.Message{msg("g")}, Sent: []string{"e", "d", "unknown"}})
	if err != nil {
		t.Fatal(err)
	}
	r, _ = h.Store.Load(ctx, "s1")
	if !slices.Equal(outboxIDs(r), []string{"f", "g"}) || !slices.Equal(outboxIDs(updated), outboxIDs(r)) {
		t.Fatalf("pending %v after a change that marked d and e, Update said %v", outboxIDs(r), outboxIDs(updated))
	}
	unsent, err := h.Store.Unsent(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(unsent) != 1 || !slices.Equal(outboxIDs(unsent[0]), []string{"f", "g"}) {
		t.Fatalf("the relay lists %d sagas, the first with %v", len(unsent), outboxIDs(unsent[0]))
	}
	// A change that conflicts marks nothing.
	if _, err := h.Store.Update(ctx, created, s, sagastore.Change{Sent: []string{"f"}}); !errors.Is(err, sagastore.ErrConflict) {
		t.Fatalf("a stale update: %v", err)
	}
	if r, _ = h.Store.Load(ctx, "s1"); !slices.Equal(outboxIDs(r), []string{"f", "g"}) {
		t.Fatalf("pending %v after a conflicting change", outboxIDs(r))
	}
}

func testUnsent(t *testing.T, h Harness) {
	ctx := context.Background()
	for i, pending := range []bool{true, false, true} {
		id := fmt.Sprintf("s%d", i)
		s, _ := Saga(id, "payments", "test", "2.0", t0.Add(time.Duration(i)*time.Minute))
		var ch sagastore.Change
		if pending {
			ch.Outbox = []bus.Message{msg(id + "-m")}
		}
		if _, err := h.Store.Create(ctx, s, ch); err != nil {
			t.Fatal(err)
		}
		if !pending {
			flush(t, h, id)
		}
	}
	recs, err := h.Store.Unsent(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		if len(outboxIDs(r)) > 0 {
			ids = append(ids, r.Saga.ID)
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"s0", "s2"}) {
		t.Fatalf("unsent %v", ids)
	}
	for _, id := range ids {
		flush(t, h, id)
	}
	if recs, _ := h.Store.Unsent(ctx, 10); len(recs) != 0 {
		t.Fatalf("still unsent after sending: %d", len(recs))
	}
}

// flush publishes what a saga has pending and marks it sent, as the
// coordinator's relay does.
func flush(t *testing.T, h Harness, id string) {
	ctx := context.Background()
	r, err := h.Store.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range r.Pending {
		if err := bus.Send(ctx, h.JS, m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	if err := h.Store.Sent(ctx, r, ids); err != nil {
		t.Fatal(err)
	}
}

func testList(t *testing.T, h Harness) {
	ctx := context.Background()
	for i, c := range []struct{ team, env, to string }{
		{"payments", "test", "2.0"}, {"payments", "production", "2.0"}, {"search", "test", "3.0"}, {"search", "production", "3.0"},
	} {
		s, _ := Saga(fmt.Sprintf("s%d", i), c.team, c.env, c.to, t0.Add(time.Duration(i)*time.Minute))
		if i == 3 {
			s.State, s.Deadline = saga.StateSucceeded, time.Time{}
		}
		if _, err := h.Store.Create(ctx, s, sagastore.Change{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		f    sagastore.Filter
		want []string
	}{
		{sagastore.Filter{}, []string{"s3", "s2", "s1", "s0"}},
		{sagastore.Filter{Team: "payments"}, []string{"s1", "s0"}},
		{sagastore.Filter{Environment: "production"}, []string{"s3", "s1"}},
		{sagastore.Filter{Active: true}, []string{"s2", "s1", "s0"}},
		{sagastore.Filter{States: []saga.State{saga.StateSucceeded}}, []string{"s3"}},
		{sagastore.Filter{Digest: "sha256:" + strings.Repeat("3", 64), Environment: "test"}, []string{"s2"}},
		{sagastore.Filter{Software: "other"}, nil},
		{sagastore.Filter{Limit: 2}, []string{"s3", "s2"}},
		// Started sagas wait for their precheck deadline (5 minutes);
		// s3 ended and waits for nothing.
		{sagastore.Filter{DueBefore: t0.Add(6 * time.Minute)}, []string{"s0"}},
		{sagastore.Filter{DueBefore: t0.Add(9 * time.Minute)}, []string{"s2", "s1", "s0"}},
		// Created a minute apart from t0: since is inclusive.
		{sagastore.Filter{Since: t0.Add(2 * time.Minute)}, []string{"s3", "s2"}},
		{sagastore.Filter{Since: t0.Add(90 * time.Second), Team: "payments"}, nil},
	} {
		got, err := h.Store.List(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range got {
			ids = append(ids, s.ID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("filter %+v: got %v, want %v", tc.f, ids, tc.want)
		}
	}
	got, _ := h.Store.List(ctx, sagastore.Filter{Team: "search", Active: true})
	if len(got) != 1 || got[0].Environment != "test" || got[0].To != "3.0" || got[0].Batches != 2 || got[0].State != saga.StatePrechecking {
		t.Fatalf("summary %+v", got)
	}
}

// One saga that cannot be decoded must not hide the others from the
// relay, the sweeps and the operator: listings skip it and name it.
func testUnreadable(t *testing.T, h Harness) {
	ctx := context.Background()
	for i := range 3 {
		id := fmt.Sprintf("s%d", i)
		s, _ := Saga(id, "payments", "test", "2.0", t0.Add(time.Duration(i)*time.Minute))
		if _, err := h.Store.Create(ctx, s, sagastore.Change{Outbox: []bus.Message{msg(id + "-m")}}); err != nil {
			t.Fatal(err)
		}
	}
	h.Spoil(t, "s1")

	if _, err := h.Store.Load(ctx, "s1"); !errors.Is(err, sagastore.ErrUnreadable) || !strings.Contains(err.Error(), "s1") {
		t.Fatalf("loading the spoilt saga: %v, want ErrUnreadable naming s1", err)
	}
	skippedOnly := func(what string, err error) {
		t.Helper()
		ids, rest := sagastore.Skipped(err)
		if rest != nil || !slices.Equal(ids, []string{"s1"}) {
			t.Fatalf("%s: skipped %v, error %v; want s1 skipped and no other error", what, ids, rest)
		}
		if !errors.Is(err, sagastore.ErrUnreadable) {
			t.Fatalf("%s: %v is not ErrUnreadable", what, err)
		}
	}
	sums, err := h.Store.List(ctx, sagastore.Filter{Team: "payments"})
	skippedOnly("list", err)
	var ids []string
	for _, s := range sums {
		ids = append(ids, s.ID)
	}
	if !slices.Equal(ids, []string{"s2", "s0"}) {
		t.Fatalf("listed %v, want [s2 s0]", ids)
	}
	recs, err := h.Store.Unsent(ctx, 10)
	skippedOnly("unsent", err)
	ids = nil
	for _, r := range recs {
		ids = append(ids, r.Saga.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"s0", "s2"}) {
		t.Fatalf("unsent %v, want [s0 s2]", ids)
	}
	// The others still flush; the spoilt one is left for an operator.
	flush(t, h, "s0")
	flush(t, h, "s2")
	recs, err = h.Store.Unsent(ctx, 10)
	skippedOnly("unsent after flushing", err)
	if len(recs) != 0 {
		t.Fatalf("%d sagas still unsent", len(recs))
	}
}

func testHistory(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := Saga("s1", "payments", "test", "2.0", t0)
	if _, err := h.Store.Create(ctx, s, sagastore.Change{Audit: []sagastore.Entry{
		entry("s1", "req", sagastore.In, 1), entry("s1", "cmd-a", sagastore.Out, 1)}}); err != nil {
		t.Fatal(err)
	}
	flush(t, h, "s1") // part of the log published, part still pending
	r, _ := h.Store.Load(ctx, "s1")
	if _, err := h.Store.Update(ctx, r, s, sagastore.Change{Audit: []sagastore.Entry{entry("s1", "res-a", sagastore.In, 2)}}); err != nil {
		t.Fatal(err)
	}
	if err := h.Store.Record(ctx, []sagastore.Entry{entry("s1", "dup", sagastore.In, 0), entry("s1", "dup", sagastore.In, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := h.Store.Record(ctx, []sagastore.Entry{entry("s1", "req", sagastore.In, 1)}); err != nil {
		t.Fatal(err)
	}
	other, _ := Saga("s2", "payments", "test", "2.0", t0)
	if _, err := h.Store.Create(ctx, other, sagastore.Change{Audit: []sagastore.Entry{entry("s2", "x", sagastore.In, 1)}}); err != nil {
		t.Fatal(err)
	}
	hist, err := h.Store.History(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range hist {
		ids = append(ids, e.ID)
	}
	want := []string{"in/req", "out/cmd-a", "in/res-a", "in/dup"}
	// Entries recorded alone (Record) may land before the pending ones.
	sortedGot, sortedWant := slices.Clone(ids), slices.Clone(want)
	slices.Sort(sortedGot)
	slices.Sort(sortedWant)
	if !slices.Equal(sortedGot, sortedWant) {
		t.Fatalf("history %v, want %v", ids, want)
	}
	if !slices.Equal(ids[:2], want[:2]) || slices.Index(ids, "in/res-a") < 2 {
		t.Fatalf("history out of order: %v", ids)
	}
	first := hist[0]
	if first.Saga != "s1" || first.Direction != sagastore.In || first.Type != "io.upshift.test" || string(first.Event) != `{"id":"req"}` || !first.At.Equal(t0.Add(time.Second)) {
		t.Fatalf("entry %+v", first)
	}
}

// BenchTransition measures one saga transition as the coordinator's engine
// makes it: an update with compare-and-set (a command, a saga event and
// three audit entries) of the record the last update returned (the engine
// keeps it, and reads the store only on a conflict), marking sent what the
// last flush published, then the flush: publish everything pending (for
// kvstore that includes its audit entries, bound for the AUDIT stream).
// The saga has targets targets, and each transition changes one step;
// open returns a fresh harness.
func BenchTransition(b *testing.B, targets int, open func(testing.TB) Harness) {
	h := open(b)
	ctx := context.Background()
	ts := make([]string, targets)
	for i := range ts {
		ts[i] = fmt.Sprintf("t%d", i)
	}
	s, eff := Saga("bench", "payments", "test", "2.0", t0)
	s.Request.Spec.Targets = ts
	s.Batches = s.Request.Batches()
	for _, c := range eff.Commands[:1] {
		s.Steps = s.Steps[:0]
		for _, t := range ts {
			st := saga.Step{ID: "bench.precheck.check." + t + ".1", Phase: c.Phase, Action: c.Action, Target: t, Status: saga.StepDispatched}
			s.Steps = append(s.Steps, &st)
		}
	}
	r, err := h.Store.Create(ctx, s, sagastore.Change{})
	if err != nil {
		b.Fatal(err)
	}
	var sent []string
	i := 0
	for b.Loop() {
		i++
		next := r.Saga
		next.Seq++
		st := *next.Steps[i%len(next.Steps)] // the record's steps are not to change
		st.Status = saga.StepRunning
		next.Steps = slices.Clone(next.Steps)
		next.Steps[i%len(next.Steps)] = &st
		id := fmt.Sprintf("m%d", i)
		ch := sagastore.Change{Outbox: []bus.Message{msg(id + "-cmd"), msg(id + "-evt")}, Audit: []sagastore.Entry{
			entry("bench", id+"-in", sagastore.In, next.Seq), entry("bench", id+"-cmd", sagastore.Out, next.Seq),
			entry("bench", id+"-evt", sagastore.Out, next.Seq)}, Sent: sent}
		if r, err = h.Store.Update(ctx, r, next, ch); err != nil {
			b.Fatal(err)
		}
		sent = sent[:0]
		for _, m := range r.Pending {
			sent = append(sent, m.ID)
		}
		if err := bus.SendAll(ctx, h.JS, r.Pending); err != nil {
			b.Fatal(err)
		}
	}
}

// The in-flight gauge counts by state what List would list as active, and
// follows every update.
func testCountActive(t *testing.T, h Harness) {
	ctx := context.Background()
	count := func() map[saga.State]int {
		t.Helper()
		got, err := h.Store.CountActive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for st, n := range got {
			if n == 0 {
				delete(got, st)
			}
		}
		return got
	}
	if got := count(); len(got) != 0 {
		t.Fatalf("an empty store counts %v", got)
	}
	revs := map[string]sagastore.Record{}
	sagas := map[string]saga.Saga{}
	for i, st := range []saga.State{saga.StatePrechecking, saga.StatePrechecking, saga.StateDeploying,
		saga.StateSucceeded, saga.StateRolledBack, saga.StateAwaitingApproval} {
		id := fmt.Sprintf("s%d", i)
		s, _ := Saga(id, "payments", "test", "2.0", t0.Add(time.Duration(i)*time.Minute))
		s.State = st
		rev, err := h.Store.Create(ctx, s, sagastore.Change{})
		if err != nil {
			t.Fatal(err)
		}
		revs[id], sagas[id] = rev, s
	}
	want := map[saga.State]int{saga.StatePrechecking: 2, saga.StateDeploying: 1, saga.StateAwaitingApproval: 1}
	if got := count(); !maps.Equal(got, want) {
		t.Fatalf("counted %v, want %v", got, want)
	}
	// s0 moves on, s2 ends.
	for id, st := range map[string]saga.State{"s0": saga.StateBackingUp, "s2": saga.StateFailed} {
		s := sagas[id]
		s.State = st
		if _, err := h.Store.Update(ctx, revs[id], s, sagastore.Change{}); err != nil {
			t.Fatal(err)
		}
	}
	want = map[saga.State]int{saga.StatePrechecking: 1, saga.StateBackingUp: 1, saga.StateAwaitingApproval: 1}
	if got := count(); !maps.Equal(got, want) {
		t.Fatalf("after updates counted %v, want %v", got, want)
	}
	active, err := h.Store.List(ctx, sagastore.Filter{Active: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 3 {
		t.Fatalf("List counts %d active, CountActive 3", len(active))
	}
}
