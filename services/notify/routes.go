package notify

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
)

// RoutesFile is the layout of the file --routes names: the channels an
// instance delivers to, and which notices go to which (examples/notify.yaml
// is a complete one).
type RoutesFile struct {
	// Channels by name. "log" is built in and may not be redefined.
	Channels map[string]ChannelSpec `json:"channels,omitempty"`
	// Routes say who gets what; a notice goes to the channels of every
	// route it matches, once each. A notice that matches none goes nowhere.
	Routes []Route `json:"routes"`
}

// ChannelSpec defines one channel: exactly one of its fields.
type ChannelSpec struct {
	Webhook *WebhookSpec `json:"webhook,omitempty"`
	Slack   *SlackSpec   `json:"slack,omitempty"`
	Email   *EmailSpec   `json:"email,omitempty"`
}

// Route matches notices by team, kind and severity.
type Route struct {
	// Teams the route is for; "*" is every team. Required.
	Teams []string `json:"teams"`
	// Kinds it matches: saga states and the kinds step_failed, approved,
	// ignored and invalid. Empty: every kind.
	Kinds []string `json:"kinds,omitempty"`
	// MinSeverity is the least severity it matches: info, warning, action
	// or critical, in that order. Empty: info.
	MinSeverity string `json:"minSeverity,omitempty"`
	// Channels the notices go to. Required.
	Channels []string `json:"channels"`
}

// severityRank orders severities: a route with minSeverity warning matches
// warning, action and critical notices. An action (someone must decide) is
// more pressing than a warning (something went wrong and was handled).
var severityRank = map[string]int{SeverityInfo: 0, SeverityWarning: 1, SeverityAction: 2, SeverityCritical: 3}

// Kinds lists every kind of notice: the saga's states and the saga event
// kinds that are not states.
func Kinds() []string {
	out := make([]string, 0, len(saga.States)+6)
	for _, s := range saga.States {
		out = append(out, string(s))
	}
	return append(out, events.KindStepFailed, events.KindApproved, events.KindConfirmed, events.KindAnnouncement,
		events.KindIgnored, events.KindInvalid)
}

// Router says which channels a notice goes to. The zero Router (no routes
// file) sends every notice to every channel.
type Router struct {
	routes []Route
	set    bool
}

// Channels returns the names of the channels among all that n goes to, in
// the order of all.
func (r Router) Channels(n events.Notice, all []string) []string {
	if !r.set {
		return all
	}
	want := map[string]bool{}
	for _, rt := range r.routes {
		if rt.matches(n) {
			for _, c := range rt.Channels {
				want[c] = true
			}
		}
	}
	var out []string
	for _, c := range all {
		if want[c] {
			out = append(out, c)
		}
	}
	return out
}

func (rt Route) matches(n events.Notice) bool {
	if !slices.Contains(rt.Teams, "*") && !slices.Contains(rt.Teams, n.Team) {
		return false
	}
	if len(rt.Kinds) > 0 && !slices.Contains(rt.Kinds, n.Kind) {
		return false
	}
	// An unknown severity (a newer router's) is let through rather than lost.
	got, known := severityRank[n.Severity]
	return !known || got >= severityRank[rt.MinSeverity]
}

// ParseRoutes reads a routes file. Every problem is named, at once.
func ParseRoutes(b []byte) (RoutesFile, error) {
	var f RoutesFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return RoutesFile{}, err
	}
	return f, f.check()
}

// LoadRoutes reads the routes file at path.
func LoadRoutes(path string) (RoutesFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return RoutesFile{}, fmt.Errorf("routes: %w", err)
	}
	f, err := ParseRoutes(b)
	if err != nil {
		return RoutesFile{}, fmt.Errorf("routes %s: %w", path, err)
	}
	return f, nil
}

// Router returns the file's routing.
func (f RoutesFile) Router() Router { return NewRouter(f.Routes) }

// NewRouter routes by routes, which a RoutesFile has checked; the service
// checks that the channels they name exist.
func NewRouter(routes []Route) Router { return Router{routes: routes, set: true} }

// names lists the channels the routes name.
func (r Router) names() []string {
	var out []string
	for _, rt := range r.routes {
		for _, c := range rt.Channels {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	return out
}

func (f RoutesFile) check() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for name, c := range f.Channels {
		if name == logChannelName {
			add("channel %q is built in", name)
		}
		if name == "" || strings.ContainsAny(name, " \t\n") {
			add("channel %q: a name has no spaces", name)
		}
		set := 0
		for _, p := range []bool{c.Webhook != nil, c.Slack != nil, c.Email != nil} {
			if p {
				set++
			}
		}
		if set != 1 {
			add("channel %s: set exactly one of webhook, slack, email", name)
			continue
		}
		var err error
		switch {
		case c.Webhook != nil:
			err = c.Webhook.check()
		case c.Slack != nil:
			err = c.Slack.check()
		case c.Email != nil:
			err = c.Email.check()
		}
		if err != nil {
			add("channel %s: %v", name, err)
		}
	}
	kinds := Kinds()
	if len(f.Routes) == 0 {
		add("no routes: no notice would go anywhere")
	}
	for i, rt := range f.Routes {
		at := fmt.Sprintf("routes[%d]", i)
		if len(rt.Teams) == 0 {
			add("%s: teams is required (\"*\" for every team)", at)
		}
		for _, t := range rt.Teams {
			if t != "*" && events.CheckToken(t) != nil {
				add("%s: team %q is not a valid name", at, t)
			}
		}
		for _, k := range rt.Kinds {
			if !slices.Contains(kinds, k) {
				add("%s: unknown kind %q (one of %s)", at, k, strings.Join(kinds, ", "))
			}
		}
		if _, ok := severityRank[rt.MinSeverity]; rt.MinSeverity != "" && !ok {
			add("%s: minSeverity %q is none of info, warning, action, critical", at, rt.MinSeverity)
		}
		if len(rt.Channels) == 0 {
			add("%s: channels is required", at)
		}
		for _, c := range rt.Channels {
			if _, ok := f.Channels[c]; !ok && c != logChannelName {
				add("%s: no channel named %q", at, c)
			}
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
