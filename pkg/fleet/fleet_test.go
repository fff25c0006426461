package fleet_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/fleet"
	"github.com/upshift/upshift/pkg/labels"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/pkg/testlog"
)

// Entries are announced, listed, selected and withdrawn on a graceful stop.
func TestAnnounceListWithdraw(t *testing.T) {
	srv, js := natstest.Start(t)
	_ = srv
	ctx := context.Background()
	kv, ttl, err := streams.EnsureTargets(ctx, js, streams.Config{TargetsTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	entries := func() []fleet.Entry {
		return []fleet.Entry{
			{Target: "web-2", Service: "deploy", Instance: "agent@h2/deploy", Host: "h2", Labels: map[string]string{"role": "web"}},
			{Target: "web-1", Service: "deploy", Instance: "agent@h1/deploy", Host: "h1", Labels: map[string]string{"role": "web"}, Version: "1.0"},
			{Target: "db-1", Service: "deploy", Instance: "agent@h3/deploy", Host: "h3", Labels: map[string]string{"role": "db"}},
		}
	}
	a := fleet.NewAnnouncer(kv, ttl, entries, testlog.New(t))
	if err := a.Announce(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "junk.deploy.x", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	l, err := fleet.List(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Targets(); !slices.Equal(got, []string{"db-1", "web-1", "web-2"}) {
		t.Fatalf("targets %v", got)
	}
	if !slices.Equal(l.Unreadable, []string{"junk.deploy.x"}) {
		t.Fatalf("unreadable %v", l.Unreadable)
	}
	if e := l.Entries[1]; e.Target != "web-1" || e.Version != "1.0" || e.Host != "h1" || e.Seen.IsZero() {
		t.Fatalf("entry %+v", e)
	}
	sel, _ := labels.ParseSelector("role=web")
	if got := l.Select(sel).Targets(); !slices.Equal(got, []string{"web-1", "web-2"}) {
		t.Fatalf("role=web chose %v", got)
	}
	for _, tc := range []struct {
		target, service string
		want            bool
	}{{"web-1", "deploy", true}, {"web-1", "verify", false}, {"web-3", "deploy", false}} {
		if ok, err := fleet.Served(ctx, kv, tc.target, tc.service); err != nil || ok != tc.want {
			t.Fatalf("served %s %s: %v %v", tc.target, tc.service, ok, err)
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ok, err := fleet.Served(ctx, kv, "web-1", "deploy"); err != nil || ok {
		t.Fatalf("after a graceful stop web-1 is still served: %v %v", ok, err)
	}
	if l, err := fleet.List(ctx, kv); err != nil || len(l.Entries) != 0 {
		t.Fatalf("after a graceful stop: %+v %v", l, err)
	}
}

// A process that dies leaves its entries to expire; the heartbeat of one
// that lives keeps them.
func TestEntriesOfADeadProcessExpire(t *testing.T) {
	srv, js := natstest.Start(t)
	ctx := context.Background()
	const ttl = time.Second
	kv, _, err := streams.EnsureTargets(ctx, js, streams.Config{TargetsTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	announce := func(target string) (stop func()) {
		_, pjs := natstest.Connect(t, srv)
		pkv, err := pjs.KeyValue(ctx, streams.TargetsBucket)
		if err != nil {
			t.Fatal(err)
		}
		a := fleet.NewAnnouncer(pkv, ttl, func() []fleet.Entry {
			return []fleet.Entry{{Target: target, Service: "deploy", Instance: target}}
		}, testlog.New(t))
		if err := a.Announce(ctx); err != nil {
			t.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = a.Run(runCtx) }()
		return func() { cancel(); <-done }
	}
	stopLive := announce("live")
	defer stopLive()
	nc, pjs := natstest.Connect(t, srv)
	pkv, err := pjs.KeyValue(ctx, streams.TargetsBucket)
	if err != nil {
		t.Fatal(err)
	}
	dead := fleet.NewAnnouncer(pkv, ttl, func() []fleet.Entry {
		return []fleet.Entry{{Target: "dead", Service: "deploy", Instance: "dead"}}
	}, testlog.New(t))
	if err := dead.Announce(ctx); err != nil {
		t.Fatal(err)
	}
	nc.Close() // killed: no heartbeat, no withdrawal

	is := func(target string) bool {
		ok, err := fleet.Served(ctx, kv, target, "deploy")
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	natstest.Eventually(t, natstest.Patience, "the dead process's entry to expire", func() bool { return !is("dead") })
	time.Sleep(2 * ttl) // several TTLs since it was first put
	if !is("live") {
		t.Fatal("the live process's entry expired despite its heartbeat")
	}
}

// A view follows announcements and withdrawals as they come, counts an
// entry only while it is younger than the TTL, lists what List lists, and
// says nothing once it stops following.
func TestViewFollowsTheRegistry(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t)
	ctx := context.Background()
	kv, ttl, err := streams.EnsureTargets(ctx, js, streams.Config{TargetsTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "before.deploy.x", []byte(`{"target":"before","service":"deploy","instance":"x"}`)); err != nil {
		t.Fatal(err)
	}
	viewCtx, stopView := context.WithCancel(ctx)
	defer stopView()
	v, err := fleet.Follow(viewCtx, kv, ttl)
	if err != nil {
		t.Fatal(err)
	}
	a := fleet.NewAnnouncer(kv, ttl, func() []fleet.Entry {
		return []fleet.Entry{{Target: "web-1", Service: "deploy", Instance: "a", Labels: map[string]string{"role": "web"}},
			{Target: "web-1", Service: "verify", Instance: "a"}}
	}, testlog.New(t))
	if err := a.Announce(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "junk.deploy.x", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	// Both of web-1's entries: the view sees them one by one (CI once
	// saw deploy's, not yet verify's).
	natstest.Eventually(t, natstest.Patience, "the view to see web-1", func() bool {
		return v.Served("web-1", "deploy", time.Now()) && v.Served("web-1", "verify", time.Now())
	})
	for _, tc := range []struct {
		target, service string
		at              time.Time
		want            bool
	}{
		{"before", "deploy", time.Now(), true}, // there before the view began
		{"web-1", "verify", time.Now(), true},
		{"web-1", "backup", time.Now(), false},
		{"junk", "deploy", time.Now(), false},
		{"web-1", "deploy", time.Now().Add(ttl), false}, // expired by then
	} {
		if got := v.Served(tc.target, tc.service, tc.at); got != tc.want {
			t.Errorf("served %s %s at %s: %v, want %v", tc.target, tc.service, tc.at.Format(time.TimeOnly), got, tc.want)
		}
	}
	listed, err := fleet.List(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	viewed, ok := v.Listing(time.Now())
	if !ok {
		t.Fatal("a following view has no listing")
	}
	key := func(l fleet.Listing) (out []string) {
		for _, e := range l.Entries {
			out = append(out, e.Key())
		}
		return out
	}
	if !slices.Equal(key(viewed), key(listed)) {
		t.Fatalf("view lists %v, the registry %v", key(viewed), key(listed))
	}
	if l, _ := v.Listing(time.Now().Add(ttl)); len(l.Entries) != 0 {
		t.Fatalf("a TTL later the view lists %v", key(l))
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	stop() // a graceful stop withdraws web-1
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, natstest.Patience, "the view to see web-1 withdrawn", func() bool {
		return !v.Served("web-1", "deploy", time.Now())
	})
	// Long expired, an entry is forgotten (the server says nothing of an
	// expired key), and written again it comes back.
	v.Listing(time.Now().Add(3 * ttl))
	if v.Served("before", "deploy", time.Now()) {
		t.Fatal("an entry long expired is still in the view")
	}
	if _, err := kv.Put(ctx, "before.deploy.x", []byte(`{"target":"before","service":"deploy","instance":"x"}`)); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, natstest.Patience, "the view to see before written again", func() bool {
		return v.Served("before", "deploy", time.Now())
	})
	stopView()
	natstest.Eventually(t, natstest.Patience, "the view to stop following", func() bool {
		_, ok := v.Listing(time.Now())
		return !ok && !v.Served("before", "deploy", time.Now())
	})
}
