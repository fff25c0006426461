package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/pkg/testlog"
)

func publishNotice(t *testing.T, js jetstream.JetStream, team, saga, kind, summary string) {
	t.Helper()
	n := events.Notice{Team: team, Saga: saga, Kind: kind, Severity: "warning", Summary: summary}
	env, err := events.New(saga+"/1.0/"+kind+"/"+team, events.TypeNotice, "upshift/notify", saga, 0, time.Now(), n)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(context.Background(), js, events.NotifySubject(team, saga, kind), env); err != nil {
		t.Fatal(err)
	}
}

// notices runs `upshift notices` until the test ends it.
func notices(t *testing.T, url string, args ...string) (*testlog.Buffer, func()) {
	var out testlog.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"notices", "--nats", url}, args...), &out) }()
	return &out, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("notices: %v", err)
		}
	}
}

func TestNoticesFollowsOneTeamFromSince(t *testing.T) {
	t.Parallel()
	srv, js := natstest.Start(t)
	if err := streams.Ensure(context.Background(), js, streams.Config{}, events.StreamNotify); err != nil {
		t.Fatal(err)
	}
	publishNotice(t, js, "billing", "s1", "failed", "billing 4.1 -> 4.2: failed: disk full")
	publishNotice(t, js, "dba", "s1", "failed", "for the dba team only")
	out, stop := notices(t, srv.URL(), "--team", "billing", "--since", "1h")
	natstest.Eventually(t, natstest.Patience, "the earlier notice shown", func() bool {
		return strings.Contains(out.String(), "billing 4.1 -> 4.2: failed: disk full  (upshift status s1)")
	})
	publishNotice(t, js, "billing", "s2", "succeeded", "billing 4.2 -> 4.3: succeeded")
	natstest.Eventually(t, natstest.Patience, "the new notice shown", func() bool {
		return strings.Contains(out.String(), "billing 4.2 -> 4.3: succeeded")
	})
	stop()
	if strings.Contains(out.String(), "dba") || strings.Count(out.String(), "\n") != 2 {
		t.Fatalf("output:\n%s", out.String())
	}
}

func TestNoticesWithoutSinceShowsOnlyNewOnesAsJSON(t *testing.T) {
	t.Parallel()
	srv, js := natstest.Start(t)
	if err := streams.Ensure(context.Background(), js, streams.Config{}, events.StreamNotify); err != nil {
		t.Fatal(err)
	}
	publishNotice(t, js, "billing", "old", "failed", "an old one")
	out, stop := notices(t, srv.URL(), "--team", "billing", "--json")
	// Published once the command is following.
	natstest.Eventually(t, natstest.Patience, "the command following", func() bool {
		s, err := js.Stream(context.Background(), events.StreamNotify)
		if err != nil {
			return false
		}
		info, err := s.Info(context.Background())
		return err == nil && info.State.Consumers == 1
	})
	publishNotice(t, js, "billing", "new", "succeeded", "a new one")
	natstest.Eventually(t, natstest.Patience, "the new notice shown", func() bool { return strings.Contains(out.String(), "a new one") })
	stop()
	var n struct {
		ID string `json:"id"`
		events.Notice
	}
	if err := json.Unmarshal([]byte(out.String()), &n); err != nil || n.ID != "new/1.0/succeeded/billing" || n.Saga != "new" {
		t.Fatalf("output %q: %+v %v", out.String(), n, err)
	}
}
