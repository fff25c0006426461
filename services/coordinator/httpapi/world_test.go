package httpapi_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/coordinatord"
	"github.com/upshift/upshift/services/coordinator/httpapi"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// The API over a real coordinator: what the routing tests take from their
// backend (errors that are sentinels, empty listings that are lists, a
// timeline in the audit log, a decision that moves the saga) holds of the
// one it is served over.
func TestOverTheCoordinator(t *testing.T) {
	w := newWorld(t, nil)
	s := &client{t: t, url: "http://" + w.http}
	done := w.submit(request("platform", "test", "app"))
	waiting := w.submit(request("dba", "production", "db"))
	s.waitFor(done, natstest.Patience, saga.StateSucceeded)
	s.waitFor(waiting, natstest.Patience, saga.StateAwaitingApproval)

	var all httpapi.ListReply
	s.get("/v1/sagas", &all)
	ids := []string{all.Sagas[0].ID, all.Sagas[len(all.Sagas)-1].ID}
	slices.Sort(ids)
	if want := []string{done, waiting}; len(all.Sagas) != 2 || !slices.Equal(ids, slices.Sorted(slices.Values(want))) {
		t.Fatalf("listed %+v, want %s and %s", all.Sagas, done, waiting)
	}
	if all.Sagas[0].CreatedAt.Before(all.Sagas[1].CreatedAt) {
		t.Fatalf("not newest first: %+v", all.Sagas)
	}
	var dba httpapi.ListReply
	s.get("/v1/sagas?team=dba&state=awaiting_approval", &dba)
	if len(dba.Sagas) != 1 || dba.Sagas[0].ID != waiting {
		t.Fatalf("listed %+v, want %s", dba.Sagas, waiting)
	}
	if _, _, raw := s.do(http.MethodGet, "/v1/sagas?team=nobody", "", nil); !strings.Contains(string(raw), `"sagas":[]`) {
		t.Fatalf("empty listing: %s", raw)
	}

	var r httpapi.SagaReply
	s.get("/v1/sagas/"+done, &r)
	if r.Saga.ID != done || r.Revision == 0 || len(r.Saga.Steps) != 4 {
		t.Fatalf("saga %q revision %d steps %d", r.Saga.ID, r.Revision, len(r.Saga.Steps))
	}
	if got := kinds(r.Timeline); got != "requested prechecking backing_up deploying verifying succeeded" {
		t.Fatalf("timeline %s", got)
	}
	var h httpapi.HistoryReply
	s.get("/v1/sagas/"+done+"/history", &h)
	if len(h.Entries) == 0 || h.Entries[0].Direction != sagastore.In || h.Entries[0].Type != events.TypeRequest {
		t.Fatalf("history starts with %+v", h.Entries[:min(1, len(h.Entries))])
	}

	for _, p := range []string{"/v1/sagas/no-such-saga", "/v1/sagas/no-such-saga/history"} {
		code, _, body := s.do(http.MethodGet, p, "", nil)
		wantError(t, p, code, body, http.StatusNotFound, "saga not found")
	}
	code, _, body := s.post("/v1/sagas/no-such-saga/approve", bearer, `{"actor":"carol"}`)
	wantError(t, "approve unknown", code, body, http.StatusNotFound, "saga not found")
	code, _, body = s.post("/v1/sagas/"+done+"/approve", bearer, `{"actor":"carol"}`)
	wantError(t, "approve a finished saga", code, body, http.StatusConflict, "decision no longer possible", "saga is succeeded")

	code, _, body = s.post("/v1/sagas/"+waiting+"/approve", bearer, `{"actor":"carol","comment":"CAB-42"}`)
	if rep := accepted(t, "approve", code, body); rep.State != string(saga.StateAwaitingApproval) {
		t.Fatalf("accepted in state %s", rep.State)
	}
	end := s.waitFor(waiting, natstest.Patience, saga.StateSucceeded)
	if got := kinds(end.Timeline); got != "requested prechecking awaiting_approval approved backing_up deploying verifying succeeded" {
		t.Fatalf("timeline %s", got)
	}
	if item := end.Timeline[3]; item.Actor != "carol" || item.Comment != "CAB-42" {
		t.Fatalf("approved item %+v", item)
	}
}

// waitFor polls GET /v1/sagas/{id} until the saga is in one of the states.
func (c *client) waitFor(id string, within time.Duration, want ...saga.State) httpapi.SagaReply {
	c.t.Helper()
	var r httpapi.SagaReply
	natstest.Eventually(c.t, within, "saga "+id+" to be "+states(want), func() bool {
		code, _, b := c.do(http.MethodGet, "/v1/sagas/"+id, "", nil)
		if code == http.StatusNotFound {
			return false // not created yet
		}
		if code != http.StatusOK {
			c.t.Fatalf("GET saga %s: %d %s", id, code, b)
		}
		r = httpapi.SagaReply{}
		decode(c.t, b, &r)
		return slices.Contains(want, r.Saga.State)
	})
	return r
}

func states(s []saga.State) string {
	var out []string
	for _, st := range s {
		out = append(out, string(st))
	}
	return strings.Join(out, " or ")
}

// fast consumer settings: a lost message comes back within a second or two.
var fast = consumer.Config{AckWait: 1500 * time.Millisecond, MaxDeliver: 10,
	Backoff: []time.Duration{20 * time.Millisecond, 100 * time.Millisecond}, Grace: 3 * time.Second}

// world is a NATS server, the four phase services with executors that
// succeed, and one coordinator process, built as its main builds it (a KV
// store, the HTTP API on a free port), that holds production sagas for
// approval.
type world struct {
	t      *testing.T
	http   string // the HTTP API's address
	client *api.Client
}

// edit, if not nil, changes the coordinator's settings.
func newWorld(t *testing.T, edit func(*coordinatord.Settings)) *world {
	srv, js := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv)
	w := &world{t: t, client: api.NewClient(nc)}
	exec := phase.ExecutorFunc(func(context.Context, events.Command, phase.Progress) (phase.Outcome, error) {
		return phase.Success(map[string]string{"by": "test"}), nil
	})
	actions := map[events.Phase][]events.Action{
		events.Precheck: {events.ActionCheck}, events.Backup: {events.ActionArchive, events.ActionRestore},
		events.Deploy: {events.ActionApply, events.ActionRollback}, events.Verify: {events.ActionProbe},
	}
	for _, p := range events.Phases {
		svc := phase.New(js, phase.Config{Service: p, Targets: []string{"a"}, Actions: actions[p], Consumer: fast},
			exec, quiet, prometheus.NewRegistry())
		w.run(string(p), svc.Run)
		natstest.Eventually(t, natstest.Patience, string(p)+" ready", svc.Ready)
	}
	env := service.Env{Instance: "coordinator@test", Log: quiet, NC: nc, JS: js, Registry: prometheus.NewRegistry()}
	settings := coordinatord.Settings{
		Store: coordinatord.StoreKV, HTTPAddr: "127.0.0.1:0", APIToken: token,
		Engine: coordinator.Config{Consumer: fast, RelayInterval: 500 * time.Millisecond,
			Policy: coordinator.Policy{ApprovalEnvironments: []string{"production"}, ApprovalTimeout: time.Hour}},
	}
	if edit != nil {
		edit(&settings)
	}
	parts, err := coordinatord.Build(context.Background(), env, settings)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(parts.Close)
	w.http = parts.HTTP.Addr()
	w.run("coordinator", func(ctx context.Context) error { return service.Group(ctx, parts.Components()) })
	natstest.Eventually(t, natstest.Patience, "coordinator ready", parts.Coordinator.Ready)
	return w
}

// run runs fn until the test ends.
func (w *world) run(name string, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			w.t.Errorf("%s: %v", name, err)
		}
	}()
	w.t.Cleanup(func() { cancel(); <-done })
}

// submit submits a request as `upshift submit` does and returns its id.
func (w *world) submit(r spec.Request) string {
	id, err := w.client.Submit(context.Background(), r)
	if err != nil {
		w.t.Fatal(err)
	}
	return id
}

func request(team, env, software string) spec.Request {
	return spec.Request{
		APIVersion: spec.APIVersion, Kind: spec.KindUpgrade,
		Metadata: spec.Metadata{Name: "http api test", Team: team, Environment: env},
		Spec: spec.Spec{Software: software, From: "1.0", To: "1.1", Targets: []string{"a"},
			Artifact: spec.Artifact{URL: "file:///app.tgz", Digest: "sha256:" + strings.Repeat("a", 64)},
			Timeouts: spec.Timeouts{Precheck: sec(30), Backup: sec(30), Deploy: sec(30), Verify: sec(60), Rollback: sec(30)}},
	}
}

func sec(n int) spec.Duration { return spec.Duration{Duration: time.Duration(n) * time.Second} }
