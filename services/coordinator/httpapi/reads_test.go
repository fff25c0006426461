package httpapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/httpapi"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/kvstore"
)

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
		if err := json.Unmarshal(b, &r); err != nil {
			c.t.Fatal(err)
		}
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

func kinds(tl []httpapi.TimelineItem) string {
	var out []string
	for _, it := range tl {
		out = append(out, it.Kind)
	}
	return strings.Join(out, " ")
}

func TestReads(t *testing.T) {
	w := newWorld(t)
	api := w.serve(httpapi.Config{Token: token}, quiet)
	a := w.submit(request("platform", "test", "app", "a", "a"))
	b := w.submit(request("dba", "production", "db", "b", "a"))
	c := w.submit(request("platform", "staging", "web", "c", "a"))
	api.waitFor(a, 20*time.Second, saga.Succeeded)
	api.waitFor(b, 20*time.Second, saga.AwaitingApproval)
	api.waitFor(c, 20*time.Second, saga.Succeeded)

	var all httpapi.ListReply
	api.get("/v1/sagas", &all)
	if len(all.Sagas) != 3 {
		t.Fatalf("listed %d sagas, want 3: %+v", len(all.Sagas), all.Sagas)
	}
	if !sort.SliceIsSorted(all.Sagas, func(i, j int) bool { return all.Sagas[i].CreatedAt.After(all.Sagas[j].CreatedAt) }) {
		t.Fatalf("not newest first: %+v", all.Sagas)
	}

	t.Run("list filters", func(t *testing.T) {
		api := api.with(t)
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"state=succeeded", []string{a, c}},
			{"state=awaiting_approval,succeeded", []string{a, b, c}},
			{"state=awaiting_approval&state=rejected", []string{b}},
			{"active=true", []string{b}},
			{"active=false", []string{a, b, c}},
			{"team=dba", []string{b}},
			{"environment=staging", []string{c}},
			{"software=app", []string{a}},
			{"digest=" + digest("c"), []string{c}},
			{"team=platform&software=web", []string{c}},
			{"team=nobody", nil},
			{"limit=1", []string{all.Sagas[0].ID}},
			{"limit=2&team=platform", []string{a, c}},
		} {
			var got httpapi.ListReply
			api.get("/v1/sagas?"+tc.query, &got)
			var ids []string
			for _, s := range got.Sagas {
				ids = append(ids, s.ID)
			}
			slices.Sort(ids)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(ids, want) {
				t.Errorf("%s: listed %v, want %v", tc.query, ids, want)
			}
		}
		// An empty listing is a list, not null.
		_, _, raw := api.do(http.MethodGet, "/v1/sagas?team=nobody", "", nil)
		if !strings.Contains(string(raw), `"sagas":[]`) {
			t.Fatalf("empty listing: %s", raw)
		}
	})

	t.Run("list bad parameters", func(t *testing.T) {
		api := api.with(t)
		for _, tc := range []struct{ query, says string }{
			{"state=bogus", `state: "bogus" is not a saga state`},
			{"state=succeeded,Succeeded", `state: "Succeeded"`},
			{"limit=abc", `limit: "abc"`},
			{"limit=0", "limit"},
			{"limit=-3", "limit"},
			{"limit=1001", "limit"},
			{"active=maybe", `active: "maybe" is not true or false`},
			{"colour=red", `unknown parameter "colour"`},
			{"team=a&team=b", "team: given 2 times"},
		} {
			code, _, body := api.do(http.MethodGet, "/v1/sagas?"+tc.query, "", nil)
			wantError(t, tc.query, code, body, http.StatusBadRequest, tc.says)
		}
	})

	t.Run("get", func(t *testing.T) {
		api := api.with(t)
		_, _, raw := api.do(http.MethodGet, "/v1/sagas/"+a, "", nil)
		var top map[string]json.RawMessage
		if err := json.Unmarshal(raw, &top); err != nil {
			t.Fatal(err)
		}
		if keys := slices.Sorted(maps.Keys(top)); !slices.Equal(keys, []string{"revision", "saga", "timeline"}) {
			t.Fatalf("keys %v", keys)
		}
		var r httpapi.SagaReply
		api.get("/v1/sagas/"+a, &r)
		if r.Saga.ID != a || r.Revision == 0 {
			t.Fatalf("saga %q revision %d", r.Saga.ID, r.Revision)
		}
		var steps []string
		for _, st := range r.Saga.Steps {
			steps = append(steps, string(st.Phase)+"."+string(st.Action)+"."+st.Target+":"+string(st.Status))
		}
		if got := strings.Join(steps, " "); got != "precheck.check.a:succeeded backup.archive.a:succeeded deploy.apply.a:succeeded verify.probe.a:succeeded" {
			t.Fatalf("steps %s", got)
		}
		if got := kinds(r.Timeline); got != "requested prechecking backing_up deploying verifying succeeded" {
			t.Fatalf("timeline %s", got)
		}
		for i, it := range r.Timeline {
			if it.At.IsZero() || it.Seq < 1 || it.State == "" {
				t.Fatalf("timeline item %d: %+v", i, it)
			}
			if i > 0 && (it.Seq < r.Timeline[i-1].Seq || it.At.Before(r.Timeline[i-1].At)) {
				t.Fatalf("timeline not oldest first at %d: %+v", i, r.Timeline)
			}
		}
		if last := r.Timeline[len(r.Timeline)-1]; last.State != "succeeded" || last.Seq != r.Saga.Seq {
			t.Fatalf("last item %+v, saga seq %d", last, r.Saga.Seq)
		}
	})

	t.Run("history", func(t *testing.T) {
		api := api.with(t)
		var h httpapi.HistoryReply
		api.get("/v1/sagas/"+a+"/history", &h)
		if len(h.Entries) == 0 || h.Entries[0].Direction != sagastore.In || h.Entries[0].Type != events.TypeRequest {
			t.Fatalf("history starts with %+v", h.Entries[:min(1, len(h.Entries))])
		}
		var r httpapi.SagaReply
		api.get("/v1/sagas/"+a, &r)
		var sagaEvents, commands int
		for _, e := range h.Entries {
			if e.Saga != a {
				t.Fatalf("entry of saga %q", e.Saga)
			}
			switch {
			case e.Direction == sagastore.Out && e.Type == events.TypeSaga:
				sagaEvents++
			case e.Direction == sagastore.Out && e.Type == events.TypeCommand:
				commands++
			}
		}
		if sagaEvents != len(r.Timeline) || commands != 4 {
			t.Fatalf("history has %d saga events (timeline %d) and %d commands", sagaEvents, len(r.Timeline), commands)
		}
	})

	t.Run("not found and bad ids", func(t *testing.T) {
		api := api.with(t)
		for _, p := range []string{"/v1/sagas/no-such-saga", "/v1/sagas/no-such-saga/history"} {
			code, _, body := api.do(http.MethodGet, p, "", nil)
			wantError(t, p, code, body, http.StatusNotFound, "saga not found")
		}
		for _, p := range []string{"/v1/sagas/bad.id", "/v1/sagas/bad*id/history", "/v1/sagas/" + strings.Repeat("x", 65)} {
			code, _, body := api.do(http.MethodGet, p, "", nil)
			wantError(t, p, code, body, http.StatusBadRequest, "saga id")
		}
	})

	t.Run("routes", func(t *testing.T) {
		api := api.with(t)
		code, _, body := api.do(http.MethodGet, "/v2/sagas", "", nil)
		wantError(t, "unknown route", code, body, http.StatusNotFound, "no such route")
		code, h, body := api.do(http.MethodDelete, "/v1/sagas/"+a, "", nil)
		wantError(t, "DELETE saga", code, body, http.StatusMethodNotAllowed)
		if h.Get("Allow") != "GET, HEAD" {
			t.Fatalf("Allow %q", h.Get("Allow"))
		}
		code, h, body = api.do(http.MethodGet, "/v1/sagas/"+b+"/approve", "", nil)
		wantError(t, "GET approve", code, body, http.StatusMethodNotAllowed)
		if h.Get("Allow") != "POST" {
			t.Fatalf("Allow %q", h.Get("Allow"))
		}
		if code, _, _ := api.do(http.MethodHead, "/v1/sagas/"+a, "", nil); code != http.StatusOK {
			t.Fatalf("HEAD saga: %d", code)
		}
	})
}

// A failing store is a 500 whose cause is logged, not shown.
func TestServerErrorsAreLoggedNotShown(t *testing.T) {
	srv, _ := natstest.Start(t)
	nc, js := natstest.Connect(t, srv)
	store, err := kvstore.Open(context.Background(), js, streams.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Not run: reads need only the store.
	c := coordinator.New(nc, js, coordinator.Config{Store: store}, quiet, prometheus.NewRegistry())
	var logs logBuffer
	s := newServer(t, c, httpapi.Config{Token: token}, slog.New(slog.NewJSONHandler(&logs, nil)))
	nc.Close()
	for _, p := range []string{"/v1/sagas", "/v1/sagas/some-saga", "/v1/sagas/some-saga/history"} {
		code, _, body := s.do(http.MethodGet, p, "", nil)
		wantError(t, p, code, body, http.StatusInternalServerError, "internal error")
		if strings.Contains(string(body), "nats") || strings.Contains(string(body), "closed") {
			t.Fatalf("%s: the cause leaked: %s", p, body)
		}
	}
	code, _, body := s.post("/v1/sagas/some-saga/approve", "Bearer "+token, `{"actor":"erin"}`)
	wantError(t, "approve", code, body, http.StatusInternalServerError, "internal error")
	var failed int
	for _, l := range logs.lines(t) {
		if l["level"] == "ERROR" && strings.Contains(l["err"].(string), "connection closed") {
			failed++
		}
	}
	if failed < 4 {
		t.Fatalf("%d errors logged with their cause, want at least 4:\n%s", failed, logs.String())
	}
}
