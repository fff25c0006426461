package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// View follows the registry in memory through one long-lived watcher, so
// that a reader need not list the registry (a consumer made and removed
// on the server each time) for every request and every command. An entry
// counts while it is younger than the bucket's TTL by its own timestamp:
// the server drops an expired key without a word to watchers.
//
// A view is believed when it says yes: a target it has as served is (give
// or take the clocks of this process and the server, and the watcher's
// lag of a moment). Anything else is to be asked of the registry itself
// (Served, List), which is what the coordinator does.
type View struct {
	ttl time.Duration

	mu        sync.Mutex
	following bool                           // caught up, and the watcher still runs
	entries   map[string]viewed              // by key
	byService map[string]map[string]struct{} // target.service -> its keys
}

type viewed struct {
	key string
	e   Entry
	at  time.Time
}

// Follow starts a view of kv, whose keys live ttl; it follows until ctx
// ends or its watcher stops.
func Follow(ctx context.Context, kv jetstream.KeyValue, ttl time.Duration) (*View, error) {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("follow the registry of targets: %w", err)
	}
	v := &View{ttl: ttl, entries: map[string]viewed{}, byService: map[string]map[string]struct{}{}}
	go v.follow(ctx, w)
	return v, nil
}

func (v *View) follow(ctx context.Context, w jetstream.KeyWatcher) {
	defer func() {
		_ = w.Stop()
		v.mu.Lock()
		v.following = false
		v.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case kve, ok := <-w.Updates():
			if !ok {
				return
			}
			v.apply(kve)
		}
	}
}

func (v *View) apply(kve jetstream.KeyValueEntry) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if kve == nil { // every entry there was at the start is in
		v.following = true
		return
	}
	key := kve.Key()
	v.forget(key)
	if kve.Operation() != jetstream.KeyValuePut {
		return
	}
	var e Entry
	if err := json.Unmarshal(kve.Value(), &e); err != nil || e.Target == "" || e.Service == "" {
		return // unreadable: only a listing of the registry names those
	}
	v.entries[key] = viewed{key: key, e: e, at: kve.Created()}
	ts := e.Target + "." + e.Service
	if v.byService[ts] == nil {
		v.byService[ts] = map[string]struct{}{}
	}
	v.byService[ts][key] = struct{}{}
}

// forget drops the entry under key, if any. v.mu is held.
func (v *View) forget(key string) {
	old, ok := v.entries[key]
	if !ok {
		return
	}
	delete(v.entries, key)
	ts := old.e.Target + "." + old.e.Service
	delete(v.byService[ts], key)
	if len(v.byService[ts]) == 0 {
		delete(v.byService, ts)
	}
}

// Served reports whether the view, at now, has a live entry of target for
// service. False is no answer: ask the registry. A nil view has nothing.
func (v *View) Served(target, service string, now time.Time) bool {
	if v == nil {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.following {
		return false
	}
	for key := range v.byService[target+"."+service] {
		if now.Sub(v.entries[key].at) < v.ttl {
			return true
		}
	}
	return false
}

// Listing returns the live entries at now, sorted as List sorts them, and
// whether the view is following at all (if not, ask the registry). A nil
// view is not.
func (v *View) Listing(now time.Time) (Listing, bool) {
	if v == nil {
		return Listing{}, false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.following {
		return Listing{}, false
	}
	live := make([]viewed, 0, len(v.entries))
	for key, x := range v.entries {
		switch {
		case now.Sub(x.at) < v.ttl:
			live = append(live, x)
		case now.Sub(x.at) > 2*v.ttl:
			// Long expired, and the server said nothing: forgotten, or
			// the view of a fleet whose targets come and go would only
			// grow. Written again, it comes back through the watcher.
			v.forget(key)
		}
	}
	// By the key it is stored under, which is its Key (cheaper to sort by
	// than to make again at each comparison).
	slices.SortFunc(live, func(a, b viewed) int { return strings.Compare(a.key, b.key) })
	out := Listing{Entries: make([]Entry, 0, len(live))}
	for _, x := range live {
		out.Entries = append(out.Entries, x.e)
	}
	return out, true
}
