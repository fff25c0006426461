// Package natstest gives a test its own embedded NATS server with JetStream,
// on a random port with storage in the test's temporary directory, and
// connections to it; everything is stopped when the test ends.
package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natsembed"
	"github.com/upshift/upshift/pkg/streams"
)

// Server starts a server for t.
func Server(t testing.TB) *natsembed.Server {
	t.Helper()
	s, err := natsembed.Start(natsembed.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Connect opens a connection and a JetStream context to s.
func Connect(t testing.TB, s *natsembed.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.URL(), nats.Name(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// Start starts a server with every upshift stream and returns a JetStream
// context to it.
func Start(t testing.TB) (*natsembed.Server, jetstream.JetStream) {
	t.Helper()
	s := Server(t)
	_, js := Connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), Patience)
	defer cancel()
	if err := streams.Ensure(ctx, js, streams.Config{}, streams.All...); err != nil {
		t.Fatal(err)
	}
	return s, js
}

// Patience is how long a test waits for something that should happen: long,
// because a shared machine running every package under the race detector
// can stall a step for seconds. Eventually returns as soon as cond holds, so
// a passing test pays nothing for it; speed is measured by benchmarks.
const Patience = 30 * time.Second

// Eventually polls cond until it holds or the time is up.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Read returns the data of every message in stream matching filter, oldest
// first.
func Read(t testing.TB, js jetstream.JetStream, stream, filter string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, m := range ReadMsgs(t, js, stream, filter) {
		out = append(out, m.Data)
	}
	return out
}

// Msg is a message read from a stream.
type Msg struct {
	Subject string
	Data    []byte
}

// ReadMsgs returns every message in stream matching filter, oldest first.
func ReadMsgs(t testing.TB, js jetstream.JetStream, stream, filter string) []Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Patience)
	defer cancel()
	// An ephemeral consumer deleted after the read: tests poll with Read,
	// and consumers left to expire would pile up to the server's limit.
	c, err := js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
		FilterSubject: filter, AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := js.DeleteConsumer(context.WithoutCancel(ctx), stream, c.CachedInfo().Name); err != nil {
			t.Errorf("read %s %s: delete its consumer: %v", stream, filter, err)
		}
	}()
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []Msg
	for pending := info.NumPending; pending > 0; {
		batch, err := c.Fetch(int(min(pending, 1000)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			out = append(out, Msg{Subject: m.Subject(), Data: m.Data()})
			n++
		}
		if n == 0 && ctx.Err() != nil {
			t.Fatalf("read %s %s: %d messages pending, none delivered within %s", stream, filter, pending, Patience)
		}
		pending -= uint64(n)
	}
	return out
}

// ReadEvents returns the data of every event in stream matching filter,
// opened as type typ, oldest first. An event that does not decode, or is of
// another type, fails the test.
func ReadEvents[T any](t testing.TB, js jetstream.JetStream, stream, filter, typ string) []T {
	t.Helper()
	var out []T
	for _, b := range Read(t, js, stream, filter) {
		env, err := events.Decode(b)
		if err != nil {
			t.Fatalf("%s %s: %v", stream, filter, err)
		}
		var v T
		if err := events.Open(env, typ, &v); err != nil {
			t.Fatalf("%s %s: %v", stream, filter, err)
		}
		out = append(out, v)
	}
	return out
}
