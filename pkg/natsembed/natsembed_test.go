package natsembed_test

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/upshift/upshift/pkg/natsembed"
)

func TestStartOnARandomPortWithJetStream(t *testing.T) {
	t.Parallel()
	if _, err := natsembed.Start(natsembed.Options{}); err == nil {
		t.Fatal("started without a storage directory")
	}
	a, err := natsembed.Start(natsembed.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	b, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), MaxPayload: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	if a.URL() == b.URL() {
		t.Fatalf("both on %s", a.URL())
	}
	for srv, want := range map[*natsembed.Server]int64{a: 4 << 20, b: 1 << 20} {
		nc, err := nats.Connect(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		if got := nc.MaxPayload(); got != want {
			t.Errorf("max payload %d, want %d", got, want)
		}
		if !srv.JetStreamEnabled() {
			t.Error("JetStream is off")
		}
		nc.Close()
	}
}
