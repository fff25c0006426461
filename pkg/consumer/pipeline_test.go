package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
)

// The caller's middleware runs inside the runner's own: it sees the decoded
// event, and what it returns is classified like the handler's. The handler
// reads the delivery's facts.
func TestTheCallersMiddlewareIsPartOfThePipeline(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	refuse := func(next consumer.Handler) consumer.Handler {
		return func(ctx context.Context, d *consumer.Delivery) error {
			if d.Event().ID == "refused" {
				return consumer.Permanent(errors.New("refused by middleware"))
			}
			return next(ctx, d)
		}
	}
	var mu sync.Mutex
	var facts []string
	f.run(func(ctx context.Context, d *consumer.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		facts = append(facts, fmt.Sprintf("%s %s seq=%d delivery=%d id=%s", d.Event().ID, d.Subject(), d.Sequence(),
			d.NumDelivered(), d.Header().Get("Nats-Msg-Id")))
		return nil
	}, consumer.WithMiddleware(refuse))
	f.publish("refused")
	f.publish("let")
	natstest.Eventually(t, natstest.Patience, "one terminated, one acked", func() bool {
		return f.count(consumer.ResultTermed) == 1 && f.count(consumer.ResultAcked) == 1
	})
	dls := f.deadLetters()
	if len(dls) != 1 || dls[0].Reason != consumer.ReasonRejected || !strings.Contains(dls[0].Error, "refused by middleware") {
		t.Fatalf("dead letters %+v", dls)
	}
	mu.Lock()
	defer mu.Unlock()
	want := fmt.Sprintf("let %s seq=2 delivery=1 id=let", events.SagaSubject("s1", "x"))
	if len(facts) != 1 || facts[0] != want {
		t.Fatalf("handled %q, want %q", facts, want)
	}
}
