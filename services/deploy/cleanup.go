package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// cleanup removes the oldest releases beyond the target's keep count. The
// releases named in protect (the current one, the one it replaced, the one
// the request came from) are kept whatever their age and count towards it.
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
	var others []release
	slots := s.t.Keep
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if keep[e.Name()] {
			slots--
			continue
		}
		others = append(others, release{e.Name(), installedAt(filepath.Join(s.t.Releases(), e.Name()))})
	}
	// Newest first: install time, not version order, which no rule fits
	// every project's version scheme.
	sort.Slice(others, func(i, j int) bool { return others[i].at.After(others[j].at) })
	var removed, failures []string
	for i, r := range others {
		if i < slots {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.t.Releases(), r.name)); err != nil {
			failures = append(failures, err.Error())
			continue
		}
		removed = append(removed, r.name)
	}
	detail := fmt.Sprintf("keep %d; removed %s", s.t.Keep, orNothing(removed))
	if len(failures) > 0 {
		s.log.Warn("clean-up incomplete", "errors", failures)
		s.add("cleanup", false, detail+"; failed: "+strings.Join(failures, "; "))
		return
	}
	s.add("cleanup", true, detail)
}

// installedAt is when a release was installed: its marker's time, written
// last; the directory's for a release installed by other means.
func installedAt(dir string) time.Time {
	if fi, err := os.Lstat(filepath.Join(dir, MarkerFile)); err == nil {
		return fi.ModTime()
	}
	if fi, err := os.Lstat(dir); err == nil {
		return fi.ModTime()
	}
	return time.Time{}
}

func orNothing(names []string) string {
	if len(names) == 0 {
		return "nothing"
	}
	return strings.Join(names, ", ")
}
