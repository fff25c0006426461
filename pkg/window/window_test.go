package window_test

import (
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/window"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func berlin() *time.Location {
	l, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		panic(err)
	}
	return l
}

func TestWeeklyWindowPastMidnight(t *testing.T) {
	// Saturday and Sunday nights, 22:00 to 04:00 in Berlin.
	w := window.Window{Days: []time.Weekday{time.Saturday, time.Sunday}, Start: 22 * 60, End: 4 * 60, Loc: berlin()}
	for _, tc := range []struct{ now, open, close string }{
		// Wednesday noon: next is Saturday 22:00 CET (21:00 UTC).
		{"2026-11-25T12:00:00Z", "2026-11-28T21:00:00Z", "2026-11-29T03:00:00Z"},
		// Sunday 01:00 Berlin: inside Saturday's window, which opened before.
		{"2026-11-29T00:00:00Z", "2026-11-28T21:00:00Z", "2026-11-29T03:00:00Z"},
		// Sunday 05:00 Berlin: Sunday night's window is next.
		{"2026-11-29T04:00:00Z", "2026-11-29T21:00:00Z", "2026-11-30T03:00:00Z"},
		// Monday 03:59 Berlin: still inside Sunday's.
		{"2026-11-30T02:59:00Z", "2026-11-29T21:00:00Z", "2026-11-30T03:00:00Z"},
		// Monday 04:00 Berlin: closed; next Saturday.
		{"2026-11-30T03:00:00Z", "2026-12-05T21:00:00Z", "2026-12-06T03:00:00Z"},
	} {
		open, close, ok := w.Next(at(tc.now))
		if !ok || !open.Equal(at(tc.open)) || !close.Equal(at(tc.close)) {
			t.Errorf("at %s: %v %v %v, want %s %s", tc.now, open.UTC(), close.UTC(), ok, tc.open, tc.close)
		}
	}
}

func TestDaylightSavingKeepsLocalTime(t *testing.T) {
	// 02:00 to 05:00 local, every day, across the spring change of
	// 29 March 2026 in Berlin: that night the window is an hour shorter.
	w := window.Window{Start: 2 * 60, End: 5 * 60, Loc: berlin()}
	open, close, _ := w.Next(at("2026-03-28T12:00:00Z"))
	if !open.Equal(at("2026-03-29T01:00:00Z")) || !close.Equal(at("2026-03-29T03:00:00Z")) {
		t.Fatalf("spring night: %v to %v", open.UTC(), close.UTC())
	}
	open, _, _ = w.Next(at("2026-03-29T12:00:00Z"))
	if !open.Equal(at("2026-03-30T00:00:00Z")) {
		t.Fatalf("the night after: %v", open.UTC())
	}
}

func TestExplicitRange(t *testing.T) {
	w := window.Window{From: at("2026-12-01T22:00:00Z"), Until: at("2026-12-02T02:00:00Z")}
	if o, _, ok := w.Next(at("2026-11-01T00:00:00Z")); !ok || !o.Equal(w.From) {
		t.Fatalf("before: %v %v", o, ok)
	}
	if _, _, ok := w.Next(at("2026-12-02T02:00:00Z")); ok {
		t.Fatal("a range in the past is still offered")
	}
}

func TestSet(t *testing.T) {
	night := window.Window{Start: 22 * 60, End: 23 * 60, Loc: time.UTC}
	noon := window.Window{Start: 12 * 60, End: 13 * 60, Loc: time.UTC}
	s := window.Set{night, noon}
	if o, _, _ := s.Next(at("2026-11-25T10:00:00Z")); !o.Equal(at("2026-11-25T12:00:00Z")) {
		t.Fatalf("next %v", o)
	}
	if !s.Open(at("2026-11-25T22:30:00Z")) || s.Open(at("2026-11-25T23:00:00Z")) {
		t.Fatal("open at the wrong times")
	}
	if !(window.Set{}).Open(at("2026-11-25T03:00:00Z")) {
		t.Fatal("an empty set is always open")
	}
}

func TestBothFindsTheFirstCommonTime(t *testing.T) {
	weekend := window.Set{{Days: []time.Weekday{time.Saturday, time.Sunday}, Start: 0, End: 0 + 23*60 + 59, Loc: time.UTC}}
	evenings := window.Set{{Start: 20 * 60, End: 22 * 60, Loc: time.UTC}}
	for _, tc := range []struct {
		a, b window.Set
		now  string
		want string
	}{
		{weekend, evenings, "2026-11-25T12:00:00Z", "2026-11-28T20:00:00Z"}, // Wednesday -> Saturday evening
		{weekend, evenings, "2026-11-28T21:00:00Z", "2026-11-28T21:00:00Z"}, // both open now
		{nil, evenings, "2026-11-25T12:00:00Z", "2026-11-25T20:00:00Z"},     // only one constrains
		{weekend, nil, "2026-11-29T10:00:00Z", "2026-11-29T10:00:00Z"},
	} {
		got, ok := window.Both(tc.a, tc.b, at(tc.now), at(tc.now).Add(30*24*time.Hour))
		if !ok || !got.Equal(at(tc.want)) {
			t.Errorf("from %s: %v %v, want %s", tc.now, got, ok, tc.want)
		}
	}
	// Never together: mornings and evenings.
	mornings := window.Set{{Start: 6 * 60, End: 8 * 60, Loc: time.UTC}}
	if got, ok := window.Both(mornings, evenings, at("2026-11-25T00:00:00Z"), at("2026-12-25T00:00:00Z")); ok {
		t.Fatalf("found %v", got)
	}
}
