package consumer_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/natstest"
)

func TestSinceSkipsOldHistoryOnlyWhenCreated(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.publish("old")
	time.Sleep(1100 * time.Millisecond)
	f.publish("recent")
	f.cfg.Since = time.Second
	var mu sync.Mutex
	var seen []string
	record := func(ctx context.Context, d *consumer.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, d.Event().ID)
		return nil
	}
	stop := f.run(record)
	natstest.Eventually(t, natstest.Patience, "recent handled", func() bool { return f.count(consumer.ResultAcked) == 1 })
	stop()
	// Restarted later, the consumer resumes where it was: nothing is skipped.
	time.Sleep(1100 * time.Millisecond)
	f.publish("later")
	f.reg = prometheus.NewRegistry()
	f.run(record)
	natstest.Eventually(t, natstest.Patience, "later handled", func() bool { return f.count(consumer.ResultAcked) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, " ") != "recent later" {
		t.Fatalf("handled %v", seen)
	}
}

func TestADeletedConsumerIsCreatedAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.run(func(ctx context.Context, d *consumer.Delivery) error { return nil })
	f.publish("before")
	natstest.Eventually(t, natstest.Patience, "first acked", func() bool { return f.count(consumer.ResultAcked) == 1 })
	if err := f.js.DeleteConsumer(context.Background(), f.cfg.Stream, f.cfg.Name); err != nil {
		t.Fatal(err)
	}
	f.publish("after")
	natstest.Eventually(t, natstest.Patience, "consumed after the consumer was deleted", func() bool {
		return f.count(consumer.ResultAcked) >= 2
	})
}

// A consumer that vanishes while no pull waits on it is never announced:
// here the server restarts without it, as after a restore of its storage
// that predates the consumer. The runner notices the silence and creates it
// again.
func TestAConsumerLostSilentlyIsCreatedAgain(t *testing.T) {
	t.Parallel()
	r := natstest.StartRestartable(t)
	js := r.JS
	f := fixtureOn(t, js)
	f.run(func(ctx context.Context, d *consumer.Delivery) error { return nil })
	f.publish("before")
	natstest.Eventually(t, natstest.Patience, "first acked", func() bool { return f.count(consumer.ResultAcked) == 1 })

	r.Stop()
	obs := filepath.Join(r.Dir, "jetstream", "$G", "streams", f.cfg.Stream, "obs", f.cfg.Name)
	if _, err := os.Stat(obs); err != nil {
		t.Fatalf("the consumer's storage is not where the test expects it: %v", err)
	}
	if err := os.RemoveAll(obs); err != nil {
		t.Fatal(err)
	}
	r.Start()
	if _, err := js.Consumer(context.Background(), f.cfg.Stream, f.cfg.Name); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("the consumer survived the restart: %v", err)
	}
	f.publish("after")
	natstest.Eventually(t, natstest.Patience, "consumed after the consumer was lost", func() bool {
		return f.count(consumer.ResultAcked) >= 2
	})
}
