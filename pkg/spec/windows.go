package spec

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/upshift/upshift/pkg/window"
)

// Window is a maintenance window: weekly (days, start, end, time zone) or an
// explicit range (from, until). A saga waits for one to open before its
// backup; an end before the start runs past midnight.
type Window struct {
	// Days of the week: mon, tue, wed, thu, fri, sat, sun. Empty: every day.
	Days []string `json:"days,omitempty"`
	// Start and End as "HH:MM" local to TimeZone.
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
	// TimeZone is an IANA name such as Europe/Berlin. Default UTC.
	TimeZone string `json:"timeZone,omitempty"`
	// From and Until bound an explicit range, RFC 3339.
	From  time.Time `json:"from,omitzero"`
	Until time.Time `json:"until,omitzero"`
}

// Approval asks for an operator's approval whatever the environment.
type Approval struct {
	Required bool `json:"required,omitempty"`
}

var (
	clockRE  = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])$`)
	weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
		"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}
)

// Compile turns a checked window into one the window package evaluates.
func (w Window) Compile() (window.Window, error) {
	if !w.From.IsZero() || !w.Until.IsZero() {
		switch {
		case w.Start != "" || w.End != "" || len(w.Days) > 0 || w.TimeZone != "":
			return window.Window{}, fmt.Errorf("a window is either weekly (days, start, end, timeZone) or a range (from, until), not both")
		case w.From.IsZero() || w.Until.IsZero():
			return window.Window{}, fmt.Errorf("a range needs both from and until")
		case !w.Until.After(w.From):
			return window.Window{}, fmt.Errorf("until (%s) is not after from (%s)", w.Until.Format(time.RFC3339), w.From.Format(time.RFC3339))
		}
		return window.Window{From: w.From, Until: w.Until}, nil
	}
	start, err := minutes("start", w.Start)
	if err != nil {
		return window.Window{}, err
	}
	end, err := minutes("end", w.End)
	if err != nil {
		return window.Window{}, err
	}
	if start == end {
		return window.Window{}, fmt.Errorf("start and end are both %s: for all day, use 00:00 to 23:59 or no window", w.Start)
	}
	out := window.Window{Start: start, End: end, Loc: time.UTC}
	if w.TimeZone != "" {
		if out.Loc, err = time.LoadLocation(w.TimeZone); err != nil {
			return window.Window{}, fmt.Errorf("time zone %q: not an IANA name such as Europe/Berlin", w.TimeZone)
		}
	}
	for _, d := range w.Days {
		wd, ok := weekdays[strings.ToLower(d)]
		if !ok {
			return window.Window{}, fmt.Errorf("day %q: mon, tue, wed, thu, fri, sat or sun", d)
		}
		out.Days = append(out.Days, wd)
	}
	return out, nil
}

func minutes(field, s string) (int, error) {
	m := clockRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%s %q: write it as HH:MM, e.g. 22:00", field, s)
	}
	h, _ := strconv.Atoi(m[1])
	min, _ := strconv.Atoi(m[2])
	return h*60 + min, nil
}

// CompileWindows compiles a list of checked windows.
func CompileWindows(ws []Window) (window.Set, error) {
	var out window.Set
	for i, w := range ws {
		c, err := w.Compile()
		if err != nil {
			return nil, fmt.Errorf("window %d: %w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}
