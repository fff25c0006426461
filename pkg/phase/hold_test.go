package phase_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase"
)

// An EVENTS stream that does not answer (here: gone for a while, as when
// its leader's node is stopped) fails the command's started report far
// longer than MaxDeliver (3) deliveries take (each publish
// tries for about 0.5 s): the service holds the
// command, tries again, and executes it once when EVENTS answers again,
// instead of spending every delivery and giving the step up unexecuted.
func TestHoldsCommandWhileEventsDoesNotAnswer(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	r := serve(t, phase.ExecutorFunc(func(ctx context.Context, c events.Command, p phase.Progress) (phase.Outcome, error) {
		calls.Add(1)
		return phase.Success(nil), nil
	}))
	ctx := context.Background()
	stream, err := r.js.Stream(ctx, events.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	if err := r.js.DeleteStream(ctx, events.StreamEvents); err != nil {
		t.Fatal(err)
	}
	c := cmd("a", events.ActionApply, 1)
	r.send(c, c.Step)
	time.Sleep(3 * time.Second)
	if _, err := r.js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if res := r.final(c.Step); res.Status != events.StatusSucceeded || res.Run != 1 {
		t.Fatalf("result %+v", res)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("executed %d times", n)
	}
}
