package targets

import (
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
)

// Defaults of the verify checks.
const (
	// DefaultVerifyTimeout bounds an HTTP or TCP check that sets none.
	DefaultVerifyTimeout = 5 * time.Second
	// DefaultSmokeTimeout bounds a smoke command that sets none.
	DefaultSmokeTimeout = time.Minute
	// DefaultAnalysisInterval is the time between two measurements.
	DefaultAnalysisInterval = 30 * time.Second
	// DefaultAnalysisCount is how many measurements an analysis takes.
	DefaultAnalysisCount = 3
)

// Verify configures the checks verify runs besides Health's: HTTP and TCP
// checks probed with the health URL in every round, smoke commands run once
// the probes pass, and metric analyses run while the probes do and, in a
// watch period, after the last batch. Everything here is the host's: a
// request can only select an optional analysis by name and set its
// threshold.
type Verify struct {
	// Timeout of each HTTP and TCP check that sets none. Default 5s.
	Timeout Duration `json:"timeout,omitzero"`
	// HTTP checks: each must answer as told in every probe round.
	HTTP []HTTPCheck `json:"http,omitempty"`
	// TCP checks: each address must accept a connection in every round.
	TCP []TCPCheck `json:"tcp,omitempty"`
	// Smoke commands run once, in order, after the probes passed.
	Smoke []SmokeCommand `json:"smoke,omitempty"`
	// Analyses query Prometheus and hold the result against a condition.
	Analyses []Analysis `json:"analyses,omitempty"`
}

// HTTPCheck is a URL that must answer the expected status, body and JSON
// field, within a latency limit.
type HTTPCheck struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Status expected; default any 2xx.
	Status int `json:"status,omitempty"`
	// Body is a regular expression the answer must match.
	Body string `json:"body,omitempty"`
	// JSONField, a dotted path into the JSON answer, must equal JSONValue;
	// a JSONValue of "${version}" is the version being installed (or, for
	// a maintenance run, the installed one).
	JSONField string `json:"jsonField,omitempty"`
	JSONValue string `json:"jsonValue,omitempty"`
	// MaxLatency the answer must come within; zero: only the time-out.
	MaxLatency Duration `json:"maxLatency,omitzero"`
	Timeout    Duration `json:"timeout,omitzero"`
}

// VersionPlaceholder in an HTTP check's JSONValue stands for the version
// the target must run.
const VersionPlaceholder = "${version}"

// TCPCheck is a host:port that must accept a connection.
type TCPCheck struct {
	// Name in the report; default the address.
	Name    string   `json:"name,omitempty"`
	Address string   `json:"address"`
	Timeout Duration `json:"timeout,omitzero"`
}

// Label is the check's name in the report: its name, or its address.
func (c TCPCheck) Label() string {
	if c.Name != "" {
		return c.Name
	}
	return c.Address
}

// SmokeCommand is a test run on the target like a hook: without a shell, in
// the target's root, with the hooks' environment and its own, its output
// captured and bounded. A non-zero exit fails the verification.
type SmokeCommand struct {
	Name    string   `json:"name"`
	Command []string `json:"command"`
	Timeout Duration `json:"timeout,omitzero"`
	// Env is added to the hooks' environment; it may hold secrets and is
	// never logged.
	Env map[string]Secret `json:"env,omitempty"`
}

// Analysis is a metric analysis in the style of Argo Rollouts'
// AnalysisTemplate: a PromQL query measured every Interval, Count times
// (or, in a watch period, until the period ends), each measurement held
// against Condition. A measurement passes, fails, or is inconclusive (the
// query failed or timed out, or, by OnEmpty, returned nothing). The
// analysis fails once more than FailureLimit measurements failed; with more
// than InconclusiveLimit inconclusive ones it ends as Inconclusive says.
type Analysis struct {
	// Name selects the analysis in a request or a policy: lower-case
	// letters, digits and '-'.
	Name string `json:"name"`
	// Query in PromQL; every sample of its result must meet Condition.
	Query string `json:"query"`
	// Condition is an operator and a threshold: "< 0.05", ">= 0.99". A
	// request or a policy may set another threshold.
	Condition string `json:"condition"`
	// Interval between measurements. Default 30s.
	Interval Duration `json:"interval,omitzero"`
	// Count of measurements. Default 3.
	Count int `json:"count,omitempty"`
	// FailureLimit is how many failed measurements are tolerated. Default 0.
	FailureLimit int `json:"failureLimit,omitempty"`
	// InconclusiveLimit is how many inconclusive ones are. Default 0.
	InconclusiveLimit int `json:"inconclusiveLimit,omitempty"`
	// OnEmpty is what a result without samples counts as: inconclusive
	// (the default), fail or pass.
	OnEmpty string `json:"onEmpty,omitempty"`
	// Inconclusive is how an analysis past its InconclusiveLimit ends:
	// fail (the default: what cannot be measured does not pass) or pass.
	Inconclusive string `json:"inconclusive,omitempty"`
	// Timeout of each query. Default 10s.
	Timeout Duration `json:"timeout,omitzero"`
	// Optional analyses run only when a request or the environment's
	// policy selects them; the others run in every verification.
	Optional bool `json:"optional,omitempty"`
}

// Measurement outcomes, and what OnEmpty and Inconclusive may say.
const (
	MeasurePass         = "pass"
	MeasureFail         = "fail"
	MeasureInconclusive = "inconclusive"
)

// Condition is an analysis' success condition: a sample passes if
// "sample Op Threshold" holds.
type Condition struct {
	Op        string
	Threshold float64
}

var operators = []string{"<=", ">=", "==", "!=", "<", ">"}

// ParseCondition reads "< 0.05".
func ParseCondition(s string) (Condition, error) {
	s = strings.TrimSpace(s)
	for _, op := range operators {
		if rest, ok := strings.CutPrefix(s, op); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return Condition{}, fmt.Errorf("condition %q: the threshold is not a number", s)
			}
			return Condition{Op: op, Threshold: v}, nil
		}
	}
	return Condition{}, fmt.Errorf("condition %q: write an operator (<, <=, >, >=, ==, !=) and a number, e.g. \"< 0.05\"", s)
}

// Holds reports whether v meets the condition.
func (c Condition) Holds(v float64) bool {
	switch c.Op {
	case "<":
		return v < c.Threshold
	case "<=":
		return v <= c.Threshold
	case ">":
		return v > c.Threshold
	case ">=":
		return v >= c.Threshold
	case "==":
		return v == c.Threshold
	case "!=":
		return v != c.Threshold
	}
	return false
}

func (c Condition) String() string {
	return c.Op + " " + strconv.FormatFloat(c.Threshold, 'g', -1, 64)
}

// Merge returns the target's settings t over the defaults d, as
// Precheck.Merge does: the target's time-out if it sets one; each list the
// defaults' entries first, a target's entry replacing the default's of the
// same name in place.
func (d Verify) Merge(t Verify) Verify {
	out := d
	if t.Timeout.Duration != 0 {
		out.Timeout = t.Timeout
	}
	out.HTTP = mergeByName(d.HTTP, t.HTTP, func(c HTTPCheck) string { return c.Name })
	out.TCP = mergeByName(d.TCP, t.TCP, TCPCheck.Label)
	out.Smoke = mergeByName(d.Smoke, t.Smoke, func(c SmokeCommand) string { return c.Name })
	out.Analyses = mergeByName(d.Analyses, t.Analyses, func(c Analysis) string { return c.Name })
	return out
}

// Empty reports whether nothing is configured beyond the health settings.
func (v Verify) Empty() bool {
	return len(v.HTTP)+len(v.TCP)+len(v.Smoke)+len(v.Analyses) == 0
}

// Analysis returns the analysis of that name.
func (v Verify) Analysis(name string) (Analysis, bool) {
	for _, a := range v.Analyses {
		if a.Name == name {
			return a, true
		}
	}
	return Analysis{}, false
}

// check validates the settings and fills in the defaults.
func (v *Verify) check() []string {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	if v.Timeout.Duration <= 0 {
		v.Timeout.Duration = DefaultVerifyTimeout
	}
	timeout := func(d *Duration, def time.Duration) {
		if d.Duration <= 0 {
			d.Duration = def
		}
	}
	unique := uniqueChecks(bad, "verify")
	for i := range v.HTTP {
		c := &v.HTTP[i]
		unique("http", c.Name)
		httpAnswer(bad, "verify", "http", c.Name, c.URL, c.Status, c.Body, c.JSONField, c.JSONValue)
		if c.MaxLatency.Duration < 0 {
			bad("verify: http %q: maxLatency cannot be negative", c.Name)
		}
		timeout(&c.Timeout, v.Timeout.Duration)
	}
	for i := range v.TCP {
		c := &v.TCP[i]
		unique("tcp", c.Label())
		if host, port, err := net.SplitHostPort(c.Address); err != nil || host == "" || port == "" {
			bad("verify: tcp %q: address must be host:port", c.Label())
		}
		timeout(&c.Timeout, v.Timeout.Duration)
	}
	for i := range v.Smoke {
		c := &v.Smoke[i]
		unique("smoke", c.Name)
		if len(c.Command) == 0 {
			bad("verify: smoke %q needs a command", c.Name)
		}
		timeout(&c.Timeout, DefaultSmokeTimeout)
	}
	for i := range v.Analyses {
		a := &v.Analyses[i]
		unique("analysis", a.Name)
		if a.Name != "" && !nameRE.MatchString(a.Name) {
			bad("verify: analysis %q: names are lower-case letters, digits and '-'", a.Name)
		}
		if strings.TrimSpace(a.Query) == "" {
			bad("verify: analysis %q needs a query", a.Name)
		}
		if _, err := ParseCondition(a.Condition); err != nil {
			bad("verify: analysis %q: %v", a.Name, err)
		}
		timeout(&a.Interval, DefaultAnalysisInterval)
		timeout(&a.Timeout, DefaultCheckTimeout)
		if a.Count == 0 {
			a.Count = DefaultAnalysisCount
		}
		if a.Count < 0 || a.FailureLimit < 0 || a.InconclusiveLimit < 0 {
			bad("verify: analysis %q: count, failureLimit and inconclusiveLimit cannot be negative", a.Name)
		}
		if a.OnEmpty == "" {
			a.OnEmpty = MeasureInconclusive
		}
		if a.OnEmpty != MeasureInconclusive && a.OnEmpty != MeasureFail && a.OnEmpty != MeasurePass {
			bad("verify: analysis %q: onEmpty is inconclusive, fail or pass, not %q", a.Name, a.OnEmpty)
		}
		if a.Inconclusive == "" {
			a.Inconclusive = MeasureFail
		}
		if a.Inconclusive != MeasureFail && a.Inconclusive != MeasurePass {
			bad("verify: analysis %q: inconclusive is fail or pass, not %q", a.Name, a.Inconclusive)
		}
	}
	return problems
}

// clone copies the lists check fills in, so that a registry shares nothing
// with its caller's configuration or another target.
func (v Verify) clone() Verify {
	v.HTTP = append([]HTTPCheck(nil), v.HTTP...)
	v.TCP = append([]TCPCheck(nil), v.TCP...)
	v.Smoke = append([]SmokeCommand(nil), v.Smoke...)
	for i := range v.Smoke {
		v.Smoke[i].Command = append([]string(nil), v.Smoke[i].Command...)
	}
	v.Analyses = append([]Analysis(nil), v.Analyses...)
	return v
}
