package kvstore_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/storetest"
)

// A saga that ended moves, once its outbox is sent, from the live bucket to
// the archive: Load, History and a listing of ended sagas still find it;
// what reads sagas in flight (a listing of active ones, the relay's Unsent,
// the overdue sweep, the in-flight count) reads it no more. An archived
// document spoilt behind the store's back proves it: reading it would
// report it unreadable.
func TestAnEndedSagaMovesToTheArchive(t *testing.T) {
	t.Parallel()
	h := harness(t)
	ctx := context.Background()
	live, err := h.JS.KeyValue(ctx, streams.SagasBucket)
	if err != nil {
		t.Fatal(err)
	}
	archive, err := h.JS.KeyValue(ctx, streams.SagasArchiveBucket)
	if err != nil {
		t.Fatal(err)
	}
	msg := func(id string) bus.Message {
		return bus.Message{ID: id, Subject: "upshift.evt.x.saga.test", Data: []byte(`{}`)}
	}

	s, _ := storetest.Saga("done", "payments", "test", "2.0", time.Now())
	rev, err := h.Store.Create(ctx, s, sagastore.Change{Outbox: []bus.Message{msg("m1")}})
	if err != nil {
		t.Fatal(err)
	}
	running, _ := storetest.Saga("running", "payments", "test", "2.0", time.Now())
	if _, err := h.Store.Create(ctx, running, sagastore.Change{}); err != nil {
		t.Fatal(err)
	}
	s.State, s.Seq = saga.StateSucceeded, s.Seq+1
	updated, err := h.Store.Update(ctx, rev, s, sagastore.Change{Outbox: []bus.Message{msg("m2")}})
	if err != nil {
		t.Fatal(err)
	}
	// Ended, with its last messages not yet sent: still live, for the relay.
	if _, err := live.Get(ctx, "saga.done"); err != nil {
		t.Fatalf("ended with messages pending, not live: %v", err)
	}
	if err := h.Store.Sent(ctx, updated, []string{"m1", "m2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Get(ctx, "saga.done"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("ended and sent, still in the live bucket: %v", err)
	}
	if _, err := archive.Get(ctx, "saga.done"); err != nil {
		t.Fatalf("not in the archive: %v", err)
	}
	if r, err := h.Store.Load(ctx, "done"); err != nil || r.Saga.State != saga.StateSucceeded || len(r.Pending) != 0 {
		t.Fatalf("load an archived saga: %v, %+v", err, r.Saga.State)
	}
	if _, err := h.Store.History(ctx, "done"); err != nil {
		t.Fatalf("history of an archived saga: %v", err)
	}
	if _, err := h.Store.Create(ctx, s, sagastore.Change{}); !errors.Is(err, sagastore.ErrExists) {
		t.Fatalf("an archived saga created again: %v", err)
	}
	ids := func(f sagastore.Filter) []string {
		t.Helper()
		list, err := h.Store.List(ctx, f)
		if err != nil {
			t.Fatalf("list %+v: %v", f, err)
		}
		var out []string
		for _, s := range list {
			out = append(out, s.ID)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		f    sagastore.Filter
		want []string
	}{
		{sagastore.Filter{}, []string{"done", "running"}},
		{sagastore.Filter{States: []saga.State{saga.StateSucceeded}}, []string{"done"}},
		{sagastore.Filter{Active: true}, []string{"running"}},
	} {
		if got := ids(tc.f); !slices.Equal(got, tc.want) {
			t.Fatalf("list %+v: %v, want %v", tc.f, got, tc.want)
		}
	}

	// Spoil the archived copy: only a listing that asks for ended sagas
	// reads it.
	if _, err := archive.Put(ctx, "saga.done", []byte(`{"saga": {"id": "done", "state": 5}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Store.List(ctx, sagastore.Filter{}); !errors.Is(err, sagastore.ErrUnreadable) {
		t.Fatalf("a listing of every saga did not read the archive: %v", err)
	}
	if got := ids(sagastore.Filter{Active: true}); !slices.Equal(got, []string{"running"}) {
		t.Fatalf("active: %v", got)
	}
	if _, err := h.Store.List(ctx, sagastore.Filter{Active: true, DueBefore: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("the sweep's listing read the archive: %v", err)
	}
	if _, err := h.Store.Unsent(ctx, 100); err != nil {
		t.Fatalf("the relay's listing read the archive: %v", err)
	}
	if counts, err := h.Store.CountActive(ctx); err != nil || counts[running.State] != 1 {
		t.Fatalf("the in-flight count: %v, %v", counts, err)
	}
}

// An archived saga still records what comes late: the update goes back to
// the live bucket with its outbox, at a conflict-checked revision, and the
// saga moves to the archive again once that is sent.
func TestAnArchivedSagaTakesALateUpdateAndIsArchivedAgain(t *testing.T) {
	t.Parallel()
	h := harness(t)
	ctx := context.Background()
	live, err := h.JS.KeyValue(ctx, streams.SagasBucket)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := storetest.Saga("late", "payments", "test", "2.0", time.Now())
	s.State = saga.StateSucceeded
	if _, err := h.Store.Create(ctx, s, sagastore.Change{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Store.Unsent(ctx, 10); err != nil { // retires it
		t.Fatal(err)
	}
	if _, err := live.Get(ctx, "saga.late"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("not archived: %v", err)
	}
	r, err := h.Store.Load(ctx, "late")
	if err != nil {
		t.Fatal(err)
	}
	s.Reason, s.Seq = "a late run recorded", s.Seq+1
	m := bus.Message{ID: "late-1", Subject: "upshift.evt.late.saga.ignored", Data: []byte(`{}`)}
	stale := r
	stale.Revision += 100
	if _, err := h.Store.Update(ctx, stale, s, sagastore.Change{Outbox: []bus.Message{m}}); !errors.Is(err, sagastore.ErrConflict) {
		t.Fatalf("update at a stale revision: %v", err)
	}
	revived, err := h.Store.Update(ctx, r, s, sagastore.Change{Outbox: []bus.Message{m}})
	if err != nil {
		t.Fatalf("update of an archived saga: %v", err)
	}
	got, err := h.Store.Load(ctx, "late")
	if err != nil || got.Saga.Reason != "a late run recorded" || len(got.Pending) != 1 {
		t.Fatalf("after the late update: %v, %q, pending %d", err, got.Saga.Reason, len(got.Pending))
	}
	if _, err := h.Store.Update(ctx, r, s, sagastore.Change{}); !errors.Is(err, sagastore.ErrConflict) {
		t.Fatalf("the same late update again: %v", err)
	}
	if err := h.Store.Sent(ctx, revived, []string{"late-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Get(ctx, "saga.late"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("sent, not archived again: %v", err)
	}
	if got, err := h.Store.Load(ctx, "late"); err != nil || got.Saga.Reason != "a late run recorded" {
		t.Fatalf("archived again: %v, %q", err, got.Saga.Reason)
	}
}

// An ended saga whose last pending message is marked by an update (its
// Change.Sent) rather than by Sent moves to the archive all the same.
func TestEndedSagaMarkedByChangeSentIsArchived(t *testing.T) {
	h := harness(t)
	ctx := context.Background()
	live, _ := h.JS.KeyValue(ctx, streams.SagasBucket)
	s, _ := storetest.Saga("done", "payments", "test", "2.0", time.Now())
	s.State = saga.StateSucceeded
	rec, err := h.Store.Create(ctx, s, sagastore.Change{Outbox: []bus.Message{{ID: "m1", Subject: "upshift.evt.x.saga.test", Data: []byte(`{}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Seq++ // a late result recorded on the ended saga
	if _, err := h.Store.Update(ctx, rec, s, sagastore.Change{Sent: []string{"m1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Get(ctx, "saga.done"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("ended, nothing pending, still live (until the relay's next Unsent): %v", err)
	}
	if r, err := h.Store.Load(ctx, "done"); err != nil || !r.Archived || r.Saga.Seq != s.Seq {
		t.Fatalf("load after: archived %v, seq %d (want %d), err %v", r.Archived, r.Saga.Seq, s.Seq, err)
	}
}
