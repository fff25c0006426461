package spec

import (
	"fmt"
	"time"
)

// Limits of the confirmation and announcement settings.
const (
	// MaxConfirmRoles is how many roles a request or a policy may name.
	MaxConfirmRoles = 16
	// MaxConfirmTimeout bounds the wait for confirmations.
	MaxConfirmTimeout = 30 * 24 * time.Hour
	// MaxAnnounceBefore bounds how long before the window an announcement
	// is sent.
	MaxAnnounceBefore = 30 * 24 * time.Hour
	// MaxAnnounceTeams is how many teams an announcement may name.
	MaxAnnounceTeams = 32
)

// Confirm names the roles (dev, qa, ops, dba...) whose people must each
// confirm that they are on hand before the backup starts; the saga waits in
// awaiting_confirmation until every role has, or fails at Timeout naming
// the roles that did not. The roles of the request and of its
// environment's policy both apply.
type Confirm struct {
	Roles []string `json:"roles"`
	// Timeout of the wait; zero: the environment's, else 24h.
	Timeout Duration `json:"timeout,omitzero"`
}

// Announce sends the business teams a short summary of the plan (software,
// from and to, how many targets, when the window opens) a set time before
// the window opens, as a notice of kind announcement.
type Announce struct {
	// Before is how long before the window opens; with no window, or one
	// already open, the announcement goes out at once.
	Before Duration `json:"before,omitzero"`
	// Teams to tell, beside the request's own notify teams.
	Teams []string `json:"teams"`
}

// Check returns the problems of the settings, their paths under prefix
// ("spec.confirm").
func (c Confirm) Check(prefix string) []Problem {
	var v validator
	v.confirm(prefix, c)
	return v.problems
}

// Check returns the problems of the settings, their paths under prefix
// ("spec.announce").
func (a Announce) Check(prefix string) []Problem {
	var v validator
	v.announce(prefix, a)
	return v.problems
}

func (v *validator) confirm(prefix string, c Confirm) {
	if len(c.Roles) == 0 {
		v.add(prefix+".roles", "at least one role is required, e.g. [dev, qa, ops, dba]")
	}
	if len(c.Roles) > MaxConfirmRoles {
		v.add(prefix+".roles", "%d roles, limit %d", len(c.Roles), MaxConfirmRoles)
	}
	v.names(prefix+".roles", c.Roles)
	if c.Timeout.Duration < 0 || c.Timeout.Duration > MaxConfirmTimeout {
		v.add(prefix+".timeout", "must be between 0 (the default) and %s, got %s", MaxConfirmTimeout, c.Timeout)
	}
}

func (v *validator) announce(prefix string, a Announce) {
	if len(a.Teams) == 0 {
		v.add(prefix+".teams", "at least one team to announce to is required")
	}
	if len(a.Teams) > MaxAnnounceTeams {
		v.add(prefix+".teams", "%d teams, limit %d", len(a.Teams), MaxAnnounceTeams)
	}
	v.names(prefix+".teams", a.Teams)
	if a.Before.Duration < 0 || a.Before.Duration > MaxAnnounceBefore {
		v.add(prefix+".before", "must be between 0 and %s, got %s", MaxAnnounceBefore, a.Before)
	}
}

// names checks a list of plain names, each once.
func (v *validator) names(prefix string, list []string) {
	seen := map[string]bool{}
	for i, s := range list {
		p := fmt.Sprintf("%s[%d]", prefix, i)
		v.name(p, s)
		if seen[s] {
			v.add(p, "%q listed twice", s)
		}
		seen[s] = true
	}
}
