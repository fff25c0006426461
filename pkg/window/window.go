// Package window answers when a maintenance window is open: weekly windows
// (days, a start and an end time, in a time zone; an end before the start
// runs past midnight) and explicit ranges. It is pure: no clock, and the
// time zone database is embedded, so the answer does not depend on the host.
package window

import (
	"slices"
	"time"
	_ "time/tzdata" // every time zone, whatever the host has
)

// Window is a weekly window or an explicit range.
type Window struct {
	// Weekly: on Days (empty: every day), from Start to End, minutes after
	// midnight in Loc. End <= Start ends on the next day.
	Days       []time.Weekday
	Start, End int
	Loc        *time.Location
	// Explicit: from From until Until. Set both or neither.
	From, Until time.Time
}

func (w Window) explicit() bool { return !w.From.IsZero() }

// periods returns the periods of w that may contain or follow t, in order.
func (w Window) periods(t time.Time) [][2]time.Time {
	if w.explicit() {
		return [][2]time.Time{{w.From, w.Until}}
	}
	loc := w.Loc
	if loc == nil {
		loc = time.UTC
	}
	local := t.In(loc)
	var out [][2]time.Time
	// From the day before (a window from yesterday may run past midnight)
	// to eight days ahead (a full week, whatever the start).
	for d := -1; d <= 8; d++ {
		day := time.Date(local.Year(), local.Month(), local.Day()+d, 0, 0, 0, 0, loc)
		if len(w.Days) > 0 && !slices.Contains(w.Days, day.Weekday()) {
			continue
		}
		open := time.Date(day.Year(), day.Month(), day.Day(), w.Start/60, w.Start%60, 0, 0, loc)
		endDay := day.Day()
		if w.End <= w.Start {
			endDay++
		}
		close := time.Date(day.Year(), day.Month(), endDay, w.End/60, w.End%60, 0, 0, loc)
		out = append(out, [2]time.Time{open, close})
	}
	return out
}

// Next returns the first period of w that ends after t: open <= t means w
// is open at t. ok is false if there is none (an explicit range in the
// past).
func (w Window) Next(t time.Time) (open, close time.Time, ok bool) {
	for _, p := range w.periods(t) {
		if p[1].After(t) {
			return p[0], p[1], true
		}
	}
	return time.Time{}, time.Time{}, false
}

// Set is a union of windows; an empty set is always open.
type Set []Window

// Next returns the earliest period of any window that ends after t.
func (s Set) Next(t time.Time) (open, close time.Time, ok bool) {
	if len(s) == 0 {
		return t, time.Time{}, true
	}
	for _, w := range s {
		o, c, found := w.Next(t)
		if found && (!ok || o.Before(open) || o.Equal(open) && c.After(close)) {
			open, close, ok = o, c, true
		}
	}
	return open, close, ok
}

// Open reports whether s is open at t.
func (s Set) Open(t time.Time) bool {
	o, _, ok := s.Next(t)
	return ok && !o.After(t)
}

// Both returns the first time at or after t when a and b are both open,
// looking no further than t+horizon.
func Both(a, b Set, t, horizon time.Time) (time.Time, bool) {
	for at := t; !at.After(horizon); {
		oa, ca, okA := a.Next(at)
		ob, cb, okB := b.Next(at)
		if !okA || !okB {
			return time.Time{}, false
		}
		start := maxTime(at, maxTime(oa, ob))
		if a.Open(start) && b.Open(start) {
			return start, true
		}
		// Move to the next change of either set.
		next := start
		for _, c := range []time.Time{ca, cb} {
			if !c.IsZero() && c.After(at) && (next.Equal(start) || c.Before(next)) {
				next = c
			}
		}
		if !next.After(at) {
			return time.Time{}, false
		}
		at = next
	}
	return time.Time{}, false
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
