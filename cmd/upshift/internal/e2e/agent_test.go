package e2e_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/cmd/upshift/internal/view"
	"github.com/upshift/upshift/pkg/natsembed"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
)

// TestAgentUpgradesAsItsHostsFourUsers runs production's layout as
// processes: the coordinator and notify, and one upshift-agent for the
// demo's host, against a server with the shipped users and permissions.
// The agent's four phases each connect as the host's user of that phase
// (--nats-user-prefix demo-host): an upgrade succeeds, the server logs no
// violation, it sees the four users connected, and the one /metrics has
// each phase's series.
func TestAgentUpgradesAsItsHostsFourUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("long: runs the demo application end to end")
	}
	users := natstest.Passwords(t, natsConf)
	violations := &natstest.Violations{}
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), ConfigFile: natsConf, Logger: violations})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	nc, err := nats.Connect(srv.URL(), users.Options(t, "admin")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	auth := func(name string) ([]string, []string) {
		if name != "agent" {
			return []string{"--nats-user", name}, []string{"UPSHIFT_NATS_PASSWORD=" + users[name]}
		}
		env := []string{}
		for _, ph := range []string{"precheck", "backup", "deploy", "verify"} {
			env = append(env, "UPSHIFT_"+strings.ToUpper(ph)+"_NATS_PASSWORD="+users["demo-host-"+ph])
		}
		return []string{"--nats-user-prefix", "demo-host"}, env
	}
	c := startCluster(t, srv, nc, js, []string{"coordinator", "notify", "agent"}, auth)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := c.client.Submit(ctx, c.d.Request("1.0", "1.1"))
	if err != nil {
		t.Fatal(err)
	}
	end, err := view.Watch(ctx, c.js, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if end.Kind != string(saga.StateSucceeded) || c.serving() != "1.1" {
		t.Fatalf("saga %s ended %s (%s), serving %s", id, end.Kind, end.Reason, c.serving())
	}
	if v := violations.Lines(); len(v) > 0 {
		t.Fatalf("permissions violations:\n%s", strings.Join(v, "\n"))
	}
	connz, err := srv.Connz(&server.ConnzOptions{Username: true})
	if err != nil {
		t.Fatal(err)
	}
	connected := map[string]bool{}
	for _, ci := range connz.Conns {
		connected[ci.AuthorizedUser] = true
	}
	for _, ph := range []string{"precheck", "backup", "deploy", "verify"} {
		if !connected["demo-host-"+ph] {
			t.Errorf("no connection of demo-host-%s: %v", ph, connected)
		}
	}
	resp, err := http.Get("http://" + c.ops["agent"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, ph := range []string{"precheck", "backup", "deploy", "verify"} {
		if !strings.Contains(string(b), `result="succeeded",service="`+ph+`"}`) {
			t.Errorf("/metrics has no series of %s", ph)
		}
	}
}
