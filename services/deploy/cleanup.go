package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// cleanup removes what the target's keep count does not cover. Only
// releases upshift installed or adopted (those with a marker) are counted
// or removed:
//   - the releases named in protect (the current one, the one it replaced,
//     the one the request came from) are kept whatever their age and count
//     towards keep;
//   - then the newest good releases (put in service and not rolled back
//     from) fill the rest of keep;
//   - every other release is removed, older good ones and those that never
//     succeeded alike, so a broken release never pushes out a good one.
//
// A failed removal is reported but does not fail the deploy: the release is
// in service by then.
func (s *step) cleanup(protect ...string) {
	s.stage("cleaning up old releases")
	entries, err := os.ReadDir(s.t.Releases())
	if err != nil {
		s.add("cleanup", false, err.Error())
		return
	}
	keep := map[string]bool{}
	for _, p := range protect {
		if p != "" {
			keep[p] = true
		}
	}
	type release struct {
		name string
		at   time.Time
	}
	var good []release
	var broken, foreign []string
	slots := s.t.Keep
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if keep[e.Name()] {
			slots--
			continue
		}
		m, err := ReadMarker(filepath.Join(s.t.Releases(), e.Name()))
		switch {
		case err != nil:
			foreign = append(foreign, e.Name())
		case !m.Good:
			broken = append(broken, e.Name())
		default:
			good = append(good, release{e.Name(), m.InstalledAt})
		}
	}
	// Newest first: install time, not version order, which no rule fits
	// every project's version scheme.
	sort.SliceStable(good, func(i, j int) bool { return good[i].at.After(good[j].at) })
	remove := broken
	for i, r := range good {
		if i >= slots {
			remove = append(remove, r.name)
		}
	}
	sort.Strings(remove)
	var removed, failures []string
	for _, name := range remove {
		if err := os.RemoveAll(filepath.Join(s.t.Releases(), name)); err != nil {
			failures = append(failures, err.Error())
			continue
		}
		removed = append(removed, name)
	}
	detail := fmt.Sprintf("keep %d; removed %s", s.t.Keep, orNothing(removed))
	if len(broken) > 0 {
		detail += fmt.Sprintf(" (not good: %s, rolled back or never in service)", strings.Join(broken, ", "))
	}
	if len(foreign) > 0 {
		detail += fmt.Sprintf("; left %s: no release marker, not upshift's (`upshift adopt` records one)", strings.Join(foreign, ", "))
	}
	if len(failures) > 0 {
		s.log.Warn("clean-up incomplete", "errors", failures)
		s.add("cleanup", false, detail+"; failed: "+strings.Join(failures, "; "))
		return
	}
	s.add("cleanup", true, detail)
}

func orNothing(names []string) string {
	if len(names) == 0 {
		return "nothing"
	}
	return strings.Join(names, ", ")
}
