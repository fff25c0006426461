package view

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
)

// Progress is `upshift watch`'s view of one saga: a row per phase and
// batch, each with its steps done, its duration and why it failed. Feed it
// the saga's events with Add; Frame renders it whole (a terminal redraws
// it), Changes the rows that changed since the last call (a log or a pipe
// gets one line per change).
type Progress struct {
	mu       sync.Mutex
	rows     []*row
	end      *events.SagaEvent
	endShown bool
	changed  []int // rows changed since the last Changes, in order
}

type row struct {
	label          string // "prechecking", "deploying batch 1/2"
	start, finish  time.Time
	steps          map[string]bool // step id: finished
	failed, reason string          // failed: the failing step's target
	done           bool
	waiting        bool // a state that waits for a person or a window: no steps
	stopped        bool // ended by the saga's end, not by the next phase
}

// Add reads one encoded event; what it cannot read, or what says nothing
// about progress, changes nothing.
func (p *Progress) Add(data []byte) {
	env, err := events.Decode(data)
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch env.Type {
	case events.TypeSaga:
		var e events.SagaEvent
		if json.Unmarshal(env.Data, &e) == nil {
			p.sagaEvent(e, env.Time)
		}
	case events.TypeStep:
		var r events.StepResult
		if json.Unmarshal(env.Data, &r) == nil {
			p.stepResult(r)
		}
	}
}

func (p *Progress) current() *row {
	if len(p.rows) == 0 || p.rows[len(p.rows)-1].done {
		return nil
	}
	return p.rows[len(p.rows)-1]
}

func (p *Progress) touch(i int) {
	if n := len(p.changed); n == 0 || p.changed[n-1] != i {
		p.changed = append(p.changed, i)
	}
}

func (p *Progress) sagaEvent(e events.SagaEvent, at time.Time) {
	if Final(e) {
		if cur := p.current(); cur != nil {
			cur.done, cur.finish = true, at
			// Cut short by a cancel, a deadline or a failure with no step
			// to blame: not a phase that finished well.
			switch saga.State(e.Kind) {
			case saga.StateSucceeded, saga.StateChecked, saga.StateRolledBack:
			default:
				cur.stopped = true
			}
			p.touch(len(p.rows) - 1)
		}
		p.end = &e
		return
	}
	if e.Kind == events.KindStepFailed {
		if cur := p.current(); cur != nil && cur.reason == "" {
			cur.reason = e.Reason
			p.touch(len(p.rows) - 1)
		}
		return
	}
	if e.Kind != e.State || e.Kind == string(saga.StateRequested) {
		return // approvals, ignored inputs: not a phase
	}
	label := strings.ReplaceAll(e.Kind, "_", " ")
	switch saga.State(e.Kind) {
	case saga.StateDeploying, saga.StateVerifying:
		label = fmt.Sprintf("%s batch %d/%d", label, e.Batch+1, e.Batches)
	}
	if cur := p.current(); cur != nil {
		if cur.label == label {
			return // the same phase again (a redelivery)
		}
		cur.done, cur.finish = true, at
		p.touch(len(p.rows) - 1)
	}
	waiting := e.Kind == string(saga.StateAwaitingApproval) || e.Kind == string(saga.StateAwaitingWindow) || e.Kind == string(saga.StateWatching)
	p.rows = append(p.rows, &row{label: label, start: at, steps: map[string]bool{}, waiting: waiting})
	p.touch(len(p.rows) - 1)
}

func (p *Progress) stepResult(r events.StepResult) {
	cur := p.current()
	if cur == nil {
		return
	}
	switch r.Status {
	case events.StatusStarted:
		if _, ok := cur.steps[r.Step]; ok {
			return
		}
		cur.steps[r.Step] = false
	case events.StatusSucceeded:
		cur.steps[r.Step] = true
	case events.StatusFailed:
		cur.steps[r.Step] = true
		if cur.failed == "" {
			cur.failed = r.Target
			reason := r.Error
			if r.Reason != "" && !strings.HasPrefix(r.Error, r.Reason) {
				reason = r.Reason + ": " + r.Error
			}
			cur.reason = fmt.Sprintf("%s %s %s: %s", r.Phase, r.Action, r.Target, oneLine(reason))
		}
	default:
		return
	}
	p.touch(len(p.rows) - 1)
}

// spinner turns once per frame.
var spinner = []string{"|", "/", "-", "\\"}

const barWidth = 20

// line renders one row at now; frame picks the spinner's position.
func (r *row) line(now time.Time, frame int) string {
	done, total := 0, len(r.steps)
	for _, d := range r.steps {
		if d {
			done++
		}
	}
	var mark, took string
	switch {
	case r.done && r.reason != "":
		mark = "FAIL"
	case r.stopped:
		mark = "stop"
	case r.done:
		mark = "ok"
	case frame < 0:
		mark = "..."
	default:
		mark = spinner[frame%len(spinner)]
	}
	if r.done {
		took = r.finish.Sub(r.start).Round(time.Millisecond).String()
	} else if frame >= 0 {
		took = now.Sub(r.start).Round(time.Second).String()
	}
	s := fmt.Sprintf("%-4s %-22s", mark, r.label)
	if !r.waiting || total > 0 {
		s += fmt.Sprintf(" %s %d/%d", bar(done, total), done, total)
	}
	if took != "" {
		s += "  " + took
	}
	if r.reason != "" {
		s += "  " + r.reason
	}
	return strings.TrimRight(s, " ")
}

func bar(done, total int) string {
	n := 0
	if total > 0 {
		n = done * barWidth / total
	}
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", barWidth-n) + "]"
}

func (p *Progress) endLine() string {
	if p.end == nil {
		return ""
	}
	return SagaLine(*p.end)
}

// Frame renders every row at now, the spinner at position frame, and the
// outcome once the saga ended: what a terminal shows.
func (p *Progress) Frame(now time.Time, frame int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.rows)+1)
	for _, r := range p.rows {
		out = append(out, r.line(now, frame))
	}
	if l := p.endLine(); l != "" {
		out = append(out, l)
	}
	return out
}

// Changes renders the rows that changed since the last call, and the
// outcome once: a line per change, for a log or a pipe. A running row has
// no spinner and no duration, so the same change renders the same way.
func (p *Progress) Changes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, i := range p.changed {
		out = append(out, p.rows[i].line(time.Time{}, -1))
	}
	p.changed = p.changed[:0]
	if l := p.endLine(); l != "" && !p.endShown {
		out = append(out, l)
		p.endShown = true
	}
	return out
}

// Terminal redraws a frame in place on a terminal: it moves the cursor up
// over the lines it drew last time and clears each line it rewrites.
type Terminal struct {
	W     io.Writer
	drawn int
}

// Draw replaces the last frame with lines.
func (t *Terminal) Draw(lines []string) {
	var b strings.Builder
	if t.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", t.drawn)
	}
	for _, l := range lines {
		b.WriteString("\r\x1b[2K" + l + "\n")
	}
	t.drawn = len(lines)
	io.WriteString(t.W, b.String())
}
