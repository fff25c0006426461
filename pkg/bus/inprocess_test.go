package bus_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
)

// race publishes each of ids from `publishers` goroutines at once, through
// send, and returns every error.
func race(ids []string, publishers int, send func(id string) error) []error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, id := range ids {
		start := make(chan struct{})
		for range publishers {
			wg.Go(func() {
				<-start
				if err := send(id); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		close(start)
	}
	wg.Wait()
	return errs
}

// A replicated stream refuses a publish whose id another publish still
// being stored holds (10158); Send tries it again, so that each of several
// senders of one message sees it sent, and the stream holds it once.
func TestSendRetriesDuplicateInProcess(t *testing.T) {
	t.Parallel()
	c := natstest.StartCluster(t) // EVENTS with three replicas
	_, js := c.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), natstest.Patience)
	defer cancel()
	const sagas, publishers = 60, 4
	message := func(round, i int) bus.Message {
		saga := fmt.Sprintf("r%d-s%d", round, i)
		env, err := events.New(saga+"/1.0/k", events.TypeSaga, "test", saga, 1, time.Now(), events.SagaEvent{Saga: saga, Kind: "k", State: "s"})
		if err != nil {
			t.Fatal(err)
		}
		m, err := bus.Encode(events.SagaSubject(saga, "k"), env)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ids := func(round int) []string {
		var out []string
		for i := range sagas {
			out = append(out, fmt.Sprintf("%d/%d", round, i))
		}
		return out
	}
	parse := func(id string) (round, i int) { _, _ = fmt.Sscanf(id, "%d/%d", &round, &i); return }

	// The same race through a plain publish shows that the server does
	// refuse such publishes here.
	raw := race(ids(0), publishers, func(id string) error {
		m := message(parse(id))
		_, err := js.Publish(ctx, m.Subject, m.Data, jetstream.WithMsgID(m.ID))
		return err
	})
	inProcess := 0
	for _, err := range raw {
		if !bus.InProcess(err) {
			t.Fatalf("plain publish: %v", err)
		}
		inProcess++
	}
	t.Logf("plain publishes: %d of %d refused as in process (10158)", inProcess, sagas*publishers)
	if inProcess == 0 {
		t.Fatal("no plain publish was refused as in process: the race tests nothing")
	}

	errs := race(ids(1), publishers, func(id string) error { return bus.Send(ctx, js, message(parse(id))) })
	for _, err := range errs {
		t.Error(err)
	}
	stored := 0
	for _, m := range natstest.ReadMsgs(t, js, events.StreamEvents, "upshift.evt.*.saga.k") {
		if strings.HasPrefix(m.Subject, "upshift.evt.r1-") {
			stored++
		}
	}
	if stored != sagas {
		t.Fatalf("%d messages stored for %d sagas", stored, sagas)
	}
}
