package targets

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"time"

	"github.com/Masterminds/semver/v3"
)

// DefaultCheckTimeout bounds a check that sets no time-out of its own.
const DefaultCheckTimeout = 10 * time.Second

// Defaults are settings every target of the file starts from; see
// Precheck.Merge for how a target's own settings combine with them.
type Defaults struct {
	Precheck Precheck `json:"precheck,omitzero"`
	Verify   Verify   `json:"verify,omitzero"`
}

// Precheck configures the environment checks run before anything changes.
// Free disk at the root is always checked; every other check runs only when
// configured. The checks of a target run concurrently, but report in this
// order: disk, memory, cpu, load, os, databases, middleware, endpoints,
// bandwidth, dependencies, each list in its own order.
type Precheck struct {
	// Timeout of each check that sets none of its own. Default 10s.
	Timeout Duration `json:"timeout,omitzero"`
	// MinFreeDisk at the root, e.g. "500MiB". Default 100MiB.
	MinFreeDisk Bytes `json:"minFreeDisk,omitzero"`
	// MinFreeDiskPercent of the root's file system that must be free.
	MinFreeDiskPercent float64 `json:"minFreeDiskPercent,omitempty"`
	// MinMemory is the memory that must be available (free, plus what the
	// kernel can reclaim at once).
	MinMemory Bytes `json:"minMemory,omitzero"`
	// MinCPUs is the number of logical CPUs the host must have.
	MinCPUs int `json:"minCPUs,omitempty"`
	// MaxLoadPerCPU bounds the 1-minute load average divided by the CPUs.
	MaxLoadPerCPU float64 `json:"maxLoadPerCPU,omitempty"`
	// OS the host must run.
	OS *OSCheck `json:"os,omitempty"`
	// Databases whose server version must satisfy a constraint.
	Databases []DatabaseCheck `json:"databases,omitempty"`
	// Middleware whose version must satisfy a constraint.
	Middleware []MiddlewareCheck `json:"middleware,omitempty"`
	// Endpoints that must accept a TCP connection.
	Endpoints []EndpointCheck `json:"endpoints,omitempty"`
	// Bandwidth that a download must reach.
	Bandwidth *BandwidthCheck `json:"bandwidth,omitempty"`
	// Dependencies: third-party services that must answer healthy.
	Dependencies []DependencyCheck `json:"dependencies,omitempty"`
}

// OSCheck says which operating systems the host may run. Versions are
// compared as their leading numbers: kernel 6.8.0-1026-azure is 6.8.0.
type OSCheck struct {
	// Names the host may report: its platform (ubuntu, rhel), its family
	// (debian) or its kind (linux, darwin). Any of them matches.
	Names []string `json:"names,omitempty"`
	// Version constraint on the platform's version, e.g. ">=22.04".
	Version string `json:"version,omitempty"`
	// Kernel constraint on the kernel's version, e.g. ">=5.4".
	Kernel  string   `json:"kernel,omitempty"`
	Timeout Duration `json:"timeout,omitzero"`
}

// DatabaseCheck connects to one of the target's databases (Target.Databases,
// by name) and checks its server's version. The DSN comes from that
// declaration and never leaves the host: report lines and errors name the
// database by Name only.
type DatabaseCheck struct {
	// Name of a database the target declares.
	Name string `json:"name"`
	// Version constraint on the server's version, e.g. ">=13 <17". Empty:
	// the server only has to answer.
	Version string   `json:"version,omitempty"`
	Timeout Duration `json:"timeout,omitzero"`
}

// MiddlewareCheck reads a version from an HTTP endpoint or from a command's
// output and checks it against a constraint.
type MiddlewareCheck struct {
	Name string `json:"name"`
	// Version constraint, e.g. ">=1.20 <2".
	Version string `json:"version,omitempty"`
	// Command prints the version; run without a shell, in the target's
	// root, with the hooks' environment. Exactly one of Command and URL.
	Command []string `json:"command,omitempty"`
	// URL answers the version, as its body or in JSONField.
	URL string `json:"url,omitempty"`
	// JSONField is a dotted path into a JSON answer, e.g. "build.version".
	JSONField string `json:"jsonField,omitempty"`
	// Pattern finds the version in the output or body: its first group,
	// or the whole match. Default: the first thing that looks like one.
	Pattern string   `json:"pattern,omitempty"`
	Timeout Duration `json:"timeout,omitzero"`
}

// EndpointCheck is a host:port that must accept a TCP connection.
type EndpointCheck struct {
	// Name in the report; default the address.
	Name    string   `json:"name,omitempty"`
	Address string   `json:"address"`
	Timeout Duration `json:"timeout,omitzero"`
}

// BandwidthCheck downloads at most MaxBytes of URL and needs MinRate.
type BandwidthCheck struct {
	URL string `json:"url"`
	// MinRate in bytes per second, e.g. "10MiB".
	MinRate Bytes `json:"minRate"`
	// MaxBytes read at most. Default 8MiB.
	MaxBytes Bytes    `json:"maxBytes,omitzero"`
	Timeout  Duration `json:"timeout,omitzero"`
}

// DependencyCheck is a third-party service that must answer healthy.
type DependencyCheck struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Status expected; default any 2xx.
	Status int `json:"status,omitempty"`
	// Body is a regular expression the answer must match.
	Body string `json:"body,omitempty"`
	// JSONField, a dotted path into the JSON answer, must equal JSONValue.
	JSONField string   `json:"jsonField,omitempty"`
	JSONValue string   `json:"jsonValue,omitempty"`
	Timeout   Duration `json:"timeout,omitzero"`
}

// Merge returns the target's settings t over the defaults d: a setting the
// target gives wins, one it leaves out is the default's. The lists
// (databases, middleware, endpoints, dependencies) hold the defaults'
// entries first, then the target's; a target's entry with the name of a
// default's replaces it in place. OS and bandwidth are taken whole, the
// target's if it has one. A target cannot drop a default check, only
// replace it.
func (d Precheck) Merge(t Precheck) Precheck {
	out := d
	if t.Timeout.Duration != 0 {
		out.Timeout = t.Timeout
	}
	if t.MinFreeDisk != 0 {
		out.MinFreeDisk = t.MinFreeDisk
	}
	if t.MinFreeDiskPercent != 0 {
		out.MinFreeDiskPercent = t.MinFreeDiskPercent
	}
	if t.MinMemory != 0 {
		out.MinMemory = t.MinMemory
	}
	if t.MinCPUs != 0 {
		out.MinCPUs = t.MinCPUs
	}
	if t.MaxLoadPerCPU != 0 {
		out.MaxLoadPerCPU = t.MaxLoadPerCPU
	}
	if t.OS != nil {
		out.OS = t.OS
	}
	if t.Bandwidth != nil {
		out.Bandwidth = t.Bandwidth
	}
	out.Databases = mergeByName(d.Databases, t.Databases, func(c DatabaseCheck) string { return c.Name })
	out.Middleware = mergeByName(d.Middleware, t.Middleware, func(c MiddlewareCheck) string { return c.Name })
	out.Endpoints = mergeByName(d.Endpoints, t.Endpoints, EndpointCheck.Label)
	out.Dependencies = mergeByName(d.Dependencies, t.Dependencies, func(c DependencyCheck) string { return c.Name })
	return out
}

func mergeByName[T any](defaults, own []T, name func(T) string) []T {
	if len(defaults) == 0 && len(own) == 0 {
		return nil
	}
	out := append([]T(nil), defaults...)
	for _, c := range own {
		// Only a default's entry is replaced: two of the target's own with
		// one name are both kept, for check to refuse.
		i := slices.IndexFunc(out[:len(defaults)], func(d T) bool { return name(d) == name(c) })
		if i >= 0 {
			out[i] = c
		} else {
			out = append(out, c)
		}
	}
	return out
}

// Label is the endpoint's name in the report: its name, or its address.
func (e EndpointCheck) Label() string {
	if e.Name != "" {
		return e.Name
	}
	return e.Address
}

// check validates the settings and fills in the defaults: each check's
// time-out. dbs are the target's databases, which database checks name.
func (p *Precheck) check(dbs []Database) []string {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	if p.Timeout.Duration <= 0 {
		p.Timeout.Duration = DefaultCheckTimeout
	}
	timeout := func(d *Duration) {
		if d.Duration <= 0 {
			d.Duration = p.Timeout.Duration
		}
	}
	if p.MinFreeDisk == 0 {
		p.MinFreeDisk = 100 << 20
	}
	if p.MinFreeDiskPercent < 0 || p.MinFreeDiskPercent > 100 {
		bad("precheck: minFreeDiskPercent %g is not between 0 and 100", p.MinFreeDiskPercent)
	}
	if p.MinCPUs < 0 || p.MaxLoadPerCPU < 0 || p.MinMemory < 0 {
		bad("precheck: minCPUs, maxLoadPerCPU and minMemory cannot be negative")
	}
	if o := p.OS; o != nil {
		if len(o.Names) == 0 && o.Version == "" && o.Kernel == "" {
			bad("precheck: os needs names, a version or a kernel")
		}
		constraint(bad, "precheck", "os version", o.Version)
		constraint(bad, "precheck", "os kernel", o.Kernel)
		timeout(&o.Timeout)
	}
	unique := uniqueChecks(bad, "precheck")
	for i := range p.Databases {
		c := &p.Databases[i]
		unique("database", c.Name)
		if c.Name != "" && !slices.ContainsFunc(dbs, func(d Database) bool { return d.Name == c.Name }) {
			bad("precheck: database %q is not one of the target's databases", c.Name)
		}
		constraint(bad, "precheck", "database "+c.Name, c.Version)
		timeout(&c.Timeout)
	}
	for i := range p.Middleware {
		c := &p.Middleware[i]
		unique("middleware", c.Name)
		if (len(c.Command) == 0) == (c.URL == "") {
			bad("precheck: middleware %q needs one of command and url", c.Name)
		}
		if c.URL != "" {
			httpURL(bad, "precheck", "middleware "+c.Name, c.URL)
		} else if c.JSONField != "" {
			bad("precheck: middleware %q: jsonField needs a url", c.Name)
		}
		pattern(bad, "precheck", "middleware "+c.Name, c.Pattern)
		constraint(bad, "precheck", "middleware "+c.Name, c.Version)
		timeout(&c.Timeout)
	}
	for i := range p.Endpoints {
		c := &p.Endpoints[i]
		unique("endpoint", c.Label())
		if host, port, err := net.SplitHostPort(c.Address); err != nil || host == "" || port == "" {
			bad("precheck: endpoint %q: address must be host:port", c.Label())
		}
		timeout(&c.Timeout)
	}
	if c := p.Bandwidth; c != nil {
		httpURL(bad, "precheck", "bandwidth", c.URL)
		if c.MinRate <= 0 {
			bad("precheck: bandwidth needs a minRate (bytes per second)")
		}
		if c.MaxBytes <= 0 {
			c.MaxBytes = 8 << 20
		}
		timeout(&c.Timeout)
	}
	for i := range p.Dependencies {
		c := &p.Dependencies[i]
		unique("dependency", c.Name)
		httpAnswer(bad, "precheck", "dependency", c.Name, c.URL, c.Status, c.Body, c.JSONField, c.JSONValue)
		timeout(&c.Timeout)
	}
	return problems
}

func constraint(bad func(string, ...any), section, what, c string) {
	if c == "" {
		return
	}
	if _, err := semver.NewConstraint(c); err != nil {
		bad("%s: %s: version constraint %q: %v", section, what, c, err)
	}
}

func pattern(bad func(string, ...any), section, what, p string) {
	if _, err := regexp.Compile(p); err != nil {
		bad("%s: %s: pattern %q: %v", section, what, p, err)
	}
}

func httpURL(bad func(string, ...any), section, what, s string) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		bad("%s: %s: the url does not parse", section, what)
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		bad("%s: %s: url %q must be http:// or https://", section, what, u.Redacted())
	}
}

// httpAnswer checks what precheck's dependency and verify's http checks
// alike expect: a URL, and of its answer a status, a body pattern and a
// JSON field.
func httpAnswer(bad func(string, ...any), section, kind, name, rawURL string, status int, body, jsonField, jsonValue string) {
	httpURL(bad, section, kind+" "+name, rawURL)
	if status != 0 && (status < 100 || status > 599) {
		bad("%s: %s %q: status %d is not an HTTP status", section, kind, name, status)
	}
	pattern(bad, section, kind+" "+name, body)
	if jsonValue != "" && jsonField == "" {
		bad("%s: %s %q: jsonValue needs a jsonField", section, kind, name)
	}
}

// clone copies the lists and pointers that check fills in, so that a
// registry shares nothing with its caller's configuration or another target.
func (p Precheck) clone() Precheck {
	if p.OS != nil {
		o := *p.OS
		o.Names = append([]string(nil), o.Names...)
		p.OS = &o
	}
	if p.Bandwidth != nil {
		b := *p.Bandwidth
		p.Bandwidth = &b
	}
	p.Databases = append([]DatabaseCheck(nil), p.Databases...)
	p.Middleware = append([]MiddlewareCheck(nil), p.Middleware...)
	for i := range p.Middleware {
		p.Middleware[i].Command = append([]string(nil), p.Middleware[i].Command...)
	}
	p.Endpoints = append([]EndpointCheck(nil), p.Endpoints...)
	p.Dependencies = append([]DependencyCheck(nil), p.Dependencies...)
	return p
}

// uniqueChecks returns a function that refuses, through bad, a check of
// section without a name, and two checks of one kind with the same name.
func uniqueChecks(bad func(string, ...any), section string) func(kind, name string) {
	names := map[string]bool{}
	return func(kind, name string) {
		if name == "" {
			bad("%s: a %s check needs a name", section, kind)
		} else if names[kind+"\x00"+name] {
			bad("%s: two %s checks named %q", section, kind, name)
		}
		names[kind+"\x00"+name] = true
	}
}
