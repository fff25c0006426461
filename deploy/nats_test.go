package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/streams"
)

const natsConf = "nats/upshift.conf"

// op is what a row of the permission table does as its user.
type op int

const (
	pub op = iota // a core publish: allowed if the server raises no violation
	js            // a JetStream publish: allowed if the stream acknowledges it
	sub           // a subscription
)

func (o op) String() string { return [...]string{"publish", "JetStream publish", "subscribe"}[o] }

// Every user of deploy/nats/upshift.conf but admin, which may do anything.
var users = []string{"coordinator", "notify", "demo-host-precheck", "demo-host-backup", "demo-host-deploy",
	"demo-host-verify", "requester-platform", "requester-qa", "viewer", "approver"}

// only lists the rows of one subject: allowed for the owners, refused for
// every other user.
func only(o op, subject string, owners ...string) []row {
	var rows []row
	for _, u := range users {
		allowed := false
		for _, w := range owners {
			allowed = allowed || u == w
		}
		rows = append(rows, row{u, o, subject, allowed})
	}
	return rows
}

type row struct {
	user    string
	op      op
	subject string
	allowed bool
}

func table() []row {
	var rows []row
	add := func(r ...row) { rows = append(rows, r...) }
	// Commands: only the coordinator publishes them; a forged deploy would
	// be executed with no saga, precheck or backup.
	add(only(js, "upshift.cmd.deploy.apply.demo", "coordinator")...)
	add(only(js, "upshift.cmd.precheck.check.demo", "coordinator")...)
	// Saga events, deadlines, the audit log: the coordinator's alone.
	add(only(js, "upshift.evt.s1.saga.succeeded", "coordinator")...)
	add(only(js, "upshift.timer.schedule.s1.1", "coordinator")...)
	add(only(pub, "upshift.timer.fire.s1")...) // only the server's scheduler fires
	add(only(js, "upshift.audit.s1", "coordinator")...)
	add(only(js, "$KV.upshift_sagas.s1", "coordinator")...)
	// Each phase service reports on its own phase's subjects only.
	add(only(js, "upshift.evt.s1.precheck.succeeded", "demo-host-precheck")...)
	add(only(js, "upshift.evt.s1.backup.succeeded", "demo-host-backup")...)
	add(only(js, "upshift.evt.s1.deploy.succeeded", "demo-host-deploy")...)
	add(only(js, "upshift.evt.s1.verify.succeeded", "demo-host-verify")...)
	// Dead letters: each consumer's owner writes its own.
	add(only(js, "upshift.dlq.COMMANDS.deploy-demo", "demo-host-deploy")...)
	add(only(js, "upshift.dlq.COMMANDS.precheck-demo", "demo-host-precheck")...)
	add(only(js, "upshift.dlq.REQUESTS.coordinator-requests", "coordinator")...)
	add(only(js, "upshift.dlq.NOTIFY.notify-deliver", "notify")...)
	// Notices: notify writes them; each team reads its own.
	add(only(js, "upshift.notify.qa.s1.succeeded", "notify")...)
	add(only(sub, "upshift.notify.qa.>", "requester-qa")...)
	add(only(sub, "upshift.notify.platform.>", "requester-platform")...)
	add(only(sub, "upshift.notify.>")...)
	add(only(sub, "upshift.cmd.>")...)
	add(only(sub, "upshift.evt.>")...)
	// Requests: a team asks on its own subject only.
	add(only(js, "upshift.request.platform", "requester-platform")...)
	add(only(js, "upshift.request.qa", "requester-qa")...)
	// Decisions: approvers only, by the API or as a control event.
	add(only(pub, "upshift.api.sagas.control", "approver")...)
	add(only(js, "upshift.control.s1.approve", "approver", "coordinator")...)
	add(only(js, "upshift.control.s1.reject", "approver", "coordinator")...)
	add(only(js, "upshift.control.s1.cancel", "approver", "coordinator")...)
	add(only(pub, "upshift.api.sagas.list", "viewer", "approver")...)
	// An agent consumes only its own service's commands of its own
	// targets: the consumer it creates names its filter.
	add(only(pub, "$JS.API.CONSUMER.CREATE.COMMANDS.deploy-demo.upshift.cmd.deploy.*.demo", "demo-host-deploy")...)
	add(only(pub, "$JS.API.CONSUMER.CREATE.COMMANDS.deploy-demo.upshift.cmd.>")...)
	add(only(pub, "$JS.API.CONSUMER.CREATE.COMMANDS.deploy-other.upshift.cmd.deploy.*.other")...)
	add(only(pub, "$JS.API.CONSUMER.CREATE.COMMANDS.deploy-demo")...)
	add(only(pub, "$JS.API.CONSUMER.MSG.NEXT.COMMANDS.deploy-demo", "demo-host-deploy")...)
	add(only(pub, "$JS.ACK.COMMANDS.deploy-demo.1.1.1.1.1.0", "demo-host-deploy")...)
	// Nobody but the coordinator changes a stream; nobody deletes one.
	add(only(pub, "$JS.API.STREAM.UPDATE.COMMANDS", "coordinator")...)
	add(only(pub, "$JS.API.STREAM.DELETE.COMMANDS")...)
	add(only(pub, "$JS.API.STREAM.PURGE.EVENTS")...)
	// Watchers pull from their own consumers of EVENTS, never from a
	// service's durable one.
	add(only(pub, "$JS.API.CONSUMER.MSG.NEXT.EVENTS.watch1", "viewer", "approver")...)
	add(only(pub, "$JS.API.CONSUMER.MSG.NEXT.EVENTS.coordinator-results", "coordinator")...)
	add(only(pub, "$JS.API.CONSUMER.MSG.NEXT.EVENTS.notify-router", "notify")...)
	return rows
}

// TestNATSPermissions runs every row of the table against a server started
// with deploy/nats/upshift.conf itself.
func TestNATSPermissions(t *testing.T) {
	s := natstest.StartSecured(t, natsConf, nil)
	// The streams exist, as the coordinator makes them, so that an allowed
	// JetStream publish is acknowledged.
	ctx, cancel := context.WithTimeout(context.Background(), natstest.Patience)
	defer cancel()
	anc, err := nats.Connect(s.URL(), s.Users.Options(t, "admin")...)
	if err != nil {
		t.Fatal(err)
	}
	defer anc.Close()
	ajs, _ := jetstream.New(anc)
	if err := streams.Ensure(ctx, ajs, streams.Config{}, streams.All...); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{streams.SagasBucket, streams.DoneBucket} {
		if _, err := streams.EnsureBucket(ctx, ajs, streams.Config{}, b, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := streams.Ensure(ctx, ajs, streams.Config{}, "AUDIT"); err != nil {
		t.Fatal(err)
	}
	for _, r := range table() {
		t.Run(r.user+" "+r.op.String()+" "+r.subject, func(t *testing.T) {
			t.Parallel()
			err := attempt(t, s, r)
			switch {
			case r.allowed && err != nil:
				t.Errorf("%s may %s %s, but: %v", r.user, r.op, r.subject, err)
			case !r.allowed && !errors.Is(err, nats.ErrPermissionViolation):
				t.Errorf("%s may not %s %s, but it was not refused (err: %v)", r.user, r.op, r.subject, err)
			}
		})
	}
}

// attempt does what r says as its user, on a connection of its own, and
// returns the server's refusal or the failure to be acknowledged.
func attempt(t *testing.T, s *natstest.Secured, r row) error {
	// The refusal is read from the connection: no handler need print it.
	nc, err := nats.Connect(s.URL(), append(s.Users.Options(t, r.user), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	switch r.op {
	case pub:
		if err := nc.Publish(r.subject, []byte("{}")); err != nil {
			return err
		}
	case sub:
		if _, err := nc.SubscribeSync(r.subject); err != nil {
			return err
		}
	case js:
		// What a JetStream publish does, with the refusal read as soon as
		// it comes: a refused message is never acknowledged.
		acks, err := nc.SubscribeSync(nats.NewInbox())
		if err != nil {
			return err
		}
		if err := nc.PublishMsg(&nats.Msg{Subject: r.subject, Reply: acks.Subject, Data: []byte("{}")}); err != nil {
			return err
		}
		if err := nc.Flush(); err != nil {
			return err
		}
		if err := nc.LastError(); err != nil {
			return err
		}
		ack, err := acks.NextMsg(natstest.Patience)
		if err != nil {
			return fmt.Errorf("no acknowledgement: %w", err)
		}
		if !strings.Contains(string(ack.Data), `"seq"`) {
			return fmt.Errorf("not stored: %s", ack.Data)
		}
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	return nc.LastError()
}
