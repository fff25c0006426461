// Package fleet is the registry of targets: every process that serves
// targets (a phase service, each phase of an upshift-agent) announces each
// one, with its labels, its installed version and where it runs, in a
// key-value bucket whose keys expire unless a heartbeat refreshes them. The
// coordinator reads it to resolve a request's selector and to refuse at
// once a target no process serves; `upshift targets` lists it.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/labels"
)

// Entry is one process's announcement of one target it serves.
type Entry struct {
	Target   string            `json:"target"`
	Service  string            `json:"service"`
	Instance string            `json:"instance"`
	Host     string            `json:"host,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	// Version is the release installed on the target, if the process
	// knows it; empty otherwise.
	Version string    `json:"version,omitempty"`
	Seen    time.Time `json:"seen"`
}

var unsafeKey = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// Key is the entry's key: <target>.<service>.<instance>, the instance with
// every character a key may not hold replaced by '_', so two instances
// serving one target for one service have a key each.
func (e Entry) Key() string {
	return e.Target + "." + e.Service + "." + unsafeKey.ReplaceAllString(e.Instance, "_")
}

// Served reports whether some process announces target for service.
func Served(ctx context.Context, kv jetstream.KeyValue, target, service string) (bool, error) {
	// A key listing is read through a watcher, and a watcher that starts
	// while an entry is being refreshed can end its snapshot without that
	// entry: "not served" is only believed when the registry says so
	// again, a moment later.
	for try := 1; ; try++ {
		ok, err := served(ctx, kv, target, service)
		if ok || err != nil || try == Retries {
			return ok, err
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(RetryPause):
		}
	}
}

// Retries is how many times a reading of the registry that lacks a target
// is made before it is believed, RetryPause apart.
const (
	Retries    = 3
	RetryPause = 250 * time.Millisecond
)

func served(ctx context.Context, kv jetstream.KeyValue, target, service string) (bool, error) {
	l, err := kv.ListKeysFiltered(ctx, target+"."+service+".*")
	if err != nil {
		return false, fmt.Errorf("who serves %s for %s: %w", target, service, err)
	}
	defer func() { _ = l.Stop() }()
	for range l.Keys() {
		return true, nil
	}
	return false, nil
}

// Listing is the registry at one moment.
type Listing struct {
	Entries []Entry `json:"entries"`
	// Unreadable names keys whose value is not an entry (written by hand,
	// or by another version): skipped, and said so.
	Unreadable []string `json:"unreadable,omitempty"`
}

// List reads every entry, sorted by target, service and instance.
func List(ctx context.Context, kv jetstream.KeyValue) (Listing, error) {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return Listing{}, fmt.Errorf("list targets: %w", err)
	}
	defer func() { _ = w.Stop() }()
	out := Listing{Entries: []Entry{}}
	for {
		select {
		case <-ctx.Done():
			return Listing{}, fmt.Errorf("list targets: %w", ctx.Err())
		case kve, ok := <-w.Updates():
			if !ok {
				return Listing{}, errors.New("list targets: watcher closed")
			}
			if kve == nil { // every current entry was delivered
				sort.Slice(out.Entries, func(i, j int) bool { return out.Entries[i].Key() < out.Entries[j].Key() })
				return out, nil
			}
			var e Entry
			if err := json.Unmarshal(kve.Value(), &e); err != nil || e.Target == "" || e.Service == "" {
				out.Unreadable = append(out.Unreadable, kve.Key())
				continue
			}
			out.Entries = append(out.Entries, e)
		}
	}
}

// Select keeps the entries of the targets that sel chooses: a target is
// chosen when one of its entries matches (each process announces the
// labels of its own targets file).
func (l Listing) Select(sel labels.Selector) Listing {
	chosen := map[string]bool{}
	for _, e := range l.Entries {
		if sel.Matches(e.Labels) {
			chosen[e.Target] = true
		}
	}
	out := Listing{Entries: []Entry{}, Unreadable: l.Unreadable}
	for _, e := range l.Entries {
		if chosen[e.Target] {
			out.Entries = append(out.Entries, e)
		}
	}
	return out
}

// Targets lists the distinct targets of the entries, sorted.
func (l Listing) Targets() []string {
	var out []string
	for _, e := range l.Entries {
		out = append(out, e.Target)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Services maps each target to the services that announce it.
func (l Listing) Services() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, e := range l.Entries {
		if out[e.Target] == nil {
			out[e.Target] = map[string]bool{}
		}
		out[e.Target][e.Service] = true
	}
	return out
}
