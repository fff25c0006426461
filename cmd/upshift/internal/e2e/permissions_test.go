package e2e_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/cmd/upshift/internal/devstack"
	"github.com/upshift/upshift/cmd/upshift/internal/view"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/api"
)

// natsConf is the server configuration upshift ships.
var natsConf = filepath.Join("..", "..", "..", "..", "deploy", "nats", "upshift.conf")

// natsUsers maps each part of the stack to its user in deploy/nats/upshift.conf:
// the phase services are those of the demo's host.
var natsUsers = map[string]string{
	"coordinator": "coordinator", "notify": "notify", "dev": "admin",
	"precheck": "demo-host-precheck", "backup": "demo-host-backup",
	"deploy": "demo-host-deploy", "verify": "demo-host-verify",
}

// TestShippedPermissionsSuffice runs the real services, each as its own
// user of the shipped configuration, through an install and an upgrade that
// rolls back (every phase, every compensation); a team's requester submits,
// a viewer watches, an approver reads. A permission missing from the file
// would fail a step, or at least be logged by the server: none may be.
func TestShippedPermissionsSuffice(t *testing.T) {
	if testing.Short() {
		t.Skip("long: runs the demo application end to end")
	}
	users := natstest.Passwords(t, natsConf)
	violations := &natstest.Violations{}
	r := newRigStack(t, "", "", coordinator.Policy{}, func(o *devstack.Options) {
		o.NATSConfig, o.NATSLog = natsConf, violations
		o.Connect = func(name string) []nats.Option { return users.Options(t, natsUsers[name]) }
	})
	connect := func(user string) (*nats.Conn, jetstream.JetStream) {
		nc, err := nats.Connect(r.s.URL(), users.Options(t, user)...)
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
	requester, _ := connect("requester-platform")
	_, viewer := connect("viewer")
	approver, _ := connect("approver")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		if v := violations.Lines(); len(v) > 0 {
			t.Errorf("the shipped permissions refused %d operations:\n%s", len(v), strings.Join(v, "\n"))
		}
	})
	for _, step := range []struct {
		from, to string
		want     saga.State
	}{{"", "1.0", saga.StateSucceeded}, {"1.0", "1.2", saga.StateRolledBack}} {
		id, err := api.NewClient(requester).Submit(ctx, r.d.Request(step.from, step.to))
		if err != nil {
			t.Fatal(err)
		}
		end, err := view.Watch(ctx, viewer, id, nil)
		if err != nil {
			t.Fatalf("watch %s as viewer: %v (stack: %v)", id, err, r.s.Err())
		}
		if saga.State(end.Kind) != step.want {
			t.Fatalf("saga %s to %s ended %s, want %s", id, step.to, end.Kind, step.want)
		}
		if _, err := api.NewClient(approver).History(ctx, id); err != nil {
			t.Fatalf("history as approver: %v", err)
		}
	}
}
