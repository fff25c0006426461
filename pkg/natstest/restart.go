package natstest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/natsembed"
	"github.com/upshift/upshift/pkg/streams"
)

// Restartable is a server with every upshift stream that a test stops and
// starts again, on the same port and storage, and a connection to it that
// reconnects by itself, as a service's does.
type Restartable struct {
	t    testing.TB
	Dir  string
	port int
	srv  *natsembed.Server
	NC   *nats.Conn
	JS   jetstream.JetStream
}

// StartRestartable starts the server, connects and provisions the streams.
func StartRestartable(t testing.TB) *Restartable {
	t.Helper()
	r := &Restartable{t: t, Dir: t.TempDir()}
	var err error
	if r.srv, err = natsembed.Start(natsembed.Options{Dir: r.Dir}); err != nil {
		t.Fatal(err)
	}
	r.port = r.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() { r.srv.Stop() })
	if r.NC, err = nats.Connect(r.srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.NC.Close)
	if r.JS, err = jetstream.New(r.NC); err != nil {
		t.Fatal(err)
	}
	if err := streams.Ensure(context.Background(), r.JS, streams.Config{}, streams.All...); err != nil {
		t.Fatal(err)
	}
	return r
}

// Stop stops the server; its storage stays, for the test to look at or
// change before Start.
func (r *Restartable) Stop() { r.srv.Stop() }

// Start starts the server again on its port and storage, and waits for the
// connection to be back.
func (r *Restartable) Start() {
	r.t.Helper()
	var err error
	if r.srv, err = natsembed.Start(natsembed.Options{Dir: r.Dir, Port: r.port}); err != nil {
		r.t.Fatal(err)
	}
	Eventually(r.t, Patience, "reconnected", r.NC.IsConnected)
}
