package kvstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natsembed"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/kvstore"
	"github.com/upshift/upshift/services/coordinator/sagastore/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, harness)
}

func harness(t testing.TB) storetest.Harness {
	_, js := natstest.Start(t)
	s, err := kvstore.Open(context.Background(), js, streams.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return storetest.Harness{Store: s, JS: js, Spoil: func(t testing.TB, id string) {
		kv, err := js.KeyValue(context.Background(), streams.SagasBucket)
		if err == nil {
			_, err = kv.Put(context.Background(), "saga."+id, []byte(`{"saga": {"id": "`+id+`", "state": 5}}`))
		}
		if err != nil {
			t.Fatal(err)
		}
	}}
}

func BenchmarkTransition(b *testing.B) {
	for _, n := range []int{1, 20, 1000} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) { storetest.BenchTransition(b, n, harness) })
	}
}

func TestHistoryLeavesNoConsumerBehind(t *testing.T) {
	t.Parallel()
	h := harness(t)
	s, _ := storetest.Saga("s1", "payments", "test", "2.0", time.Now())
	if _, err := h.Store.Create(context.Background(), s, sagastore.Change{}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, err := h.Store.History(context.Background(), "s1"); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := h.JS.Stream(context.Background(), events.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Fatalf("%d consumers left on AUDIT after 20 reads", info.State.Consumers)
	}
}

// A server that takes small messages: a saga that would not fit keeps its
// steps without their reports; one that still would not is refused, loudly.
func TestDocumentsFitTheServersMessages(t *testing.T) {
	t.Parallel()
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), MaxPayload: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	_, js := natstest.Connect(t, srv)
	store, err := kvstore.Open(context.Background(), js, streams.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, _ := storetest.Saga("big", "payments", "test", "2.0", time.Now())
	for i := range 20 {
		s.Steps = append(s.Steps, &saga.Step{ID: fmt.Sprintf("big.deploy.apply.t%d.1", i), Phase: events.Deploy, Action: events.ActionApply,
			Target: fmt.Sprintf("t%d", i), Status: saga.StepSucceeded, Error: "fine",
			Report: []events.ReportLine{{Name: "start", OK: true, Detail: strings.Repeat("x", 4000)}}})
	}
	if _, err := store.Create(ctx, s, sagastore.Change{}); err != nil {
		t.Fatal(err)
	}
	if s.Steps[5].Report == nil {
		t.Fatal("storing a saga too large with its reports dropped the reports of the saga it was given")
	}
	r, err := store.Load(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Saga.Steps) != len(s.Steps) || r.Saga.Steps[5].Report != nil || r.Saga.Steps[5].Status != saga.StepSucceeded || r.Saga.Steps[5].Error != "fine" {
		t.Fatalf("stored step %+v", r.Saga.Steps[5])
	}
	huge, _ := storetest.Saga("huge", "payments", "test", "2.0", time.Now())
	for i := range 400 {
		huge.Steps = append(huge.Steps, &saga.Step{ID: fmt.Sprintf("huge.deploy.apply.target-%d.1", i), Error: strings.Repeat("e", 200)})
	}
	if _, err := store.Create(ctx, huge, sagastore.Change{}); !errors.Is(err, sagastore.ErrTooLarge) || !strings.Contains(err.Error(), "use the postgres store") {
		t.Fatalf("huge saga: %v", err)
	}
}

// Junk published on a saga's audit subject (anyone may publish there)
// does not make its history unreadable: the junk is shown as an unreadable
// entry, in its place, and every other entry is read.
func TestJunkInTheAuditLogIsShownNotFatal(t *testing.T) {
	t.Parallel()
	h := harness(t)
	ctx := context.Background()
	s, _ := storetest.Saga("s1", "payments", "test", "2.0", time.Now())
	if _, err := h.Store.Create(ctx, s, sagastore.Change{}); err != nil {
		t.Fatal(err)
	}
	good := func(id string) []byte {
		b, _ := json.Marshal(sagastore.Entry{ID: id, Saga: "s1", Direction: sagastore.In, Type: events.TypeStep, Event: json.RawMessage(`{}`)})
		return b
	}
	for _, b := range [][]byte{good("in/before"), []byte("} not json \x00"), good("in/after")} {
		if _, err := h.JS.Publish(ctx, events.AuditSubject("s1"), b); err != nil {
			t.Fatal(err)
		}
	}
	hist, err := h.Store.History(ctx, "s1")
	if err != nil {
		t.Fatalf("history with junk in it: %v", err)
	}
	var got []string
	for _, e := range hist {
		got = append(got, string(e.Direction)+" "+e.ID)
	}
	if len(hist) != 3 || hist[0].ID != "in/before" || hist[1].Direction != sagastore.Unreadable || hist[2].ID != "in/after" ||
		!strings.Contains(hist[1].Note, "cannot be decoded") {
		t.Fatalf("history %q (%+v)", got, hist)
	}
}

// A transition's audit entries travel as one message (a few when they are
// many and large), and History reads them back one by one, with the
// entries earlier versions wrote one a message.
func TestATransitionsAuditEntriesAreOneMessage(t *testing.T) {
	t.Parallel()
	h := harness(t)
	ctx := context.Background()
	s, _ := storetest.Saga("s1", "payments", "test", "2.0", time.Now())
	entry := func(id string, size int) sagastore.Entry {
		return sagastore.Entry{ID: id, Saga: "s1", Seq: 1, Direction: sagastore.Out, Type: events.TypeCommand,
			Event: json.RawMessage(`{"pad":"` + strings.Repeat("x", size) + `"}`)}
	}
	// An entry as an earlier version wrote it, alone in its message.
	old, _ := json.Marshal(entry("in/old", 10))
	if _, err := h.JS.Publish(ctx, events.AuditSubject("s1"), old); err != nil {
		t.Fatal(err)
	}
	small := []sagastore.Entry{entry("in/req", 10), entry("out/a", 10), entry("out/b", 10)}
	rec, err := h.Store.Create(ctx, s, sagastore.Change{Audit: small})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Pending) != 1 {
		t.Fatalf("3 small entries pending as %d messages, want 1", len(rec.Pending))
	}
	// Ten entries of 100 KiB: over the message size, cut in several.
	var big []sagastore.Entry
	for i := range 10 {
		big = append(big, entry(fmt.Sprintf("out/big%d", i), 100<<10))
	}
	s.Seq++
	rec, err = h.Store.Update(ctx, rec, s, sagastore.Change{Audit: big})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Pending); n < 1+4 || n > 1+6 {
		t.Fatalf("1 + 10 entries of 100 KiB pending as %d messages", n)
	}
	var ids []string
	for _, m := range rec.Pending {
		ids = append(ids, m.ID)
		if len(m.Data) > 512<<10 {
			t.Fatalf("message %s of %d bytes", m.ID, len(m.Data))
		}
		if err := bus.Send(ctx, h.JS, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Store.Sent(ctx, rec, ids); err != nil {
		t.Fatal(err)
	}
	// Recorded again alone (an input ignored as a duplicate): dropped.
	if err := h.Store.Record(ctx, []sagastore.Entry{entry("in/req", 10)}); err != nil {
		t.Fatal(err)
	}
	stream, err := h.JS.Stream(ctx, events.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := int(info.State.Msgs); got != 1+len(rec.Pending) {
		t.Fatalf("%d messages in AUDIT, want %d", got, 1+len(rec.Pending))
	}
	hist, err := h.Store.History(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range hist {
		got = append(got, e.ID)
	}
	want := []string{"in/old", "in/req", "out/a", "out/b"}
	for i := range 10 {
		want = append(want, fmt.Sprintf("out/big%d", i))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("history %v, want %v", got, want)
	}
}
