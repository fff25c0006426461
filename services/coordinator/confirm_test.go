package coordinator_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/api"
)

// The environment's roles join the request's; each confirmation goes
// through REQUESTS like a decision; a role not asked for is a bad request;
// the same role confirmed twice at once is recorded once; the saga goes on
// when the last role confirmed, and the announcement went out to the
// environment's and the request's teams.
func TestConfirmationsThroughTheAPI(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open storeOpener) {
		w := newWorldOn(t, open, "a")
		w.policy = coordinator.Policy{Environments: map[string]coordinator.Environment{"production": {
			Confirm:  &spec.Confirm{Roles: []string{"ops"}},
			Announce: &spec.Announce{Teams: []string{"service-desk"}},
		}}}
		c, _ := w.coordinator("c1")
		ctx := context.Background()
		req := request("production", "a")
		req.Spec.Confirm = &spec.Confirm{Roles: []string{"dba"}}
		req.Spec.Announce = &spec.Announce{Teams: []string{"sales"}}
		id := w.submit(req)
		s := w.wait(id, natstest.Patience, saga.StateAwaitingConfirmation)
		if got := strings.Join(s.Options.Confirm.Roles, " "); got != "ops dba" {
			t.Fatalf("roles %q, want the environment's then the request's", got)
		}
		if _, err := c.Decide(ctx, api.ControlRequest{ID: id, Op: events.OpConfirm, Actor: "q", Role: "qa"}); !errors.Is(err, api.ErrBadRequest) ||
			!strings.Contains(err.Error(), `role "qa"`) {
			t.Fatalf("confirm qa: %v", err)
		}
		if _, err := c.Decide(ctx, api.ControlRequest{ID: id, Op: events.OpConfirm, Actor: "q"}); !errors.Is(err, api.ErrBadRequest) {
			t.Fatalf("confirm without a role: %v", err)
		}
		if _, err := c.Decide(ctx, api.ControlRequest{ID: id, Op: events.OpApprove, Actor: "q", Role: "dba"}); !errors.Is(err, api.ErrBadRequest) {
			t.Fatalf("approve with a role: %v", err)
		}
		// Twice at once: the second is refused as too late, or accepted
		// before the first was applied and then ignored by the saga.
		for range 2 {
			if _, err := c.Decide(ctx, api.ControlRequest{ID: id, Op: events.OpConfirm, Actor: "dora", Role: "dba", Comment: "on call"}); err != nil &&
				!errors.Is(err, api.ErrTooLate) {
				t.Fatal(err)
			}
		}
		natstest.Eventually(t, natstest.Patience, "dba confirmed", func() bool {
			r, err := w.store.Load(ctx, id)
			return err == nil && len(r.Saga.Confirmations) == 1
		})
		if _, err := c.Decide(ctx, api.ControlRequest{ID: id, Op: events.OpConfirm, Actor: "dora", Role: "dba"}); !errors.Is(err, api.ErrTooLate) ||
			!strings.Contains(err.Error(), "role dba already confirmed by dora") {
			t.Fatalf("confirm dba again: %v", err)
		}
		if _, err := c.Decide(ctx, api.ControlRequest{ID: id, Op: events.OpConfirm, Actor: "otto", Role: "ops"}); err != nil {
			t.Fatal(err)
		}
		s = w.wait(id, natstest.Patience, saga.StateSucceeded)
		if len(s.Confirmations) != 2 || s.Confirmations[0].Role != "dba" || s.Confirmations[0].Comment != "on call" || s.Confirmations[1].By != "otto" {
			t.Fatalf("confirmations %+v", s.Confirmations)
		}
		var ann []events.SagaEvent
		for _, e := range natstest.ReadEvents[events.SagaEvent](t, w.js, events.StreamEvents, events.SagaSubject(id, ">"), events.TypeSaga) {
			if e.Kind == events.KindAnnouncement {
				ann = append(ann, e)
			}
		}
		if len(ann) != 1 || !slices.Equal(ann[0].Audience, []string{"service-desk", "sales"}) {
			t.Fatalf("announcements %+v", ann)
		}
		if n := slices.Index(w.sagaEvents(id), events.KindConfirmed); n < 0 {
			t.Fatalf("events %v", w.sagaEvents(id))
		}
	})
}
