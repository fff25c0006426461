package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"
)

// heapSample is the Go heap in use after a collection, in bytes: the whole
// process's, and the shares allocated by the coordinator's code and by the
// NATS servers' code.
type heapSample struct {
	at                          time.Duration // since the start
	total, coordinator, servers float64
}

// readHeap collects garbage, then reads the heap and splits it by the heap
// profile. The servers, the coordinator, the phase services and the soak
// share the process, so each live object is put down to the code that
// allocated it: the innermost frame of its allocation's stack that is the
// NATS server's (github.com/nats-io/nats-server) or the coordinator's
// (services/coordinator and below) decides; the rest (the NATS clients'
// buffers, the phase services, notify, the soak) is neither. The profile
// samples one allocation per 512 KiB on average and is scaled as pprof
// scales it: an estimate, good for a trend.
func readHeap() heapSample {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h := heapSample{total: float64(ms.HeapAlloc)}
	n, _ := runtime.MemProfile(nil, false)
	var recs []runtime.MemProfileRecord
	for {
		recs = make([]runtime.MemProfileRecord, n+64)
		var ok bool
		if n, ok = runtime.MemProfile(recs, false); ok {
			recs = recs[:n]
			break
		}
	}
	rate := float64(runtime.MemProfileRate)
	for _, r := range recs {
		if r.InUseObjects() == 0 || r.AllocObjects == 0 {
			continue
		}
		size := float64(r.AllocBytes) / float64(r.AllocObjects)
		bytes := float64(r.InUseBytes()) / (1 - math.Exp(-size/rate))
		switch owner(r.Stack()) {
		case "servers":
			h.servers += bytes
		case "coordinator":
			h.coordinator += bytes
		}
	}
	return h
}

// owner is whose code allocated at stack: "servers", "coordinator" or "".
func owner(stack []uintptr) string {
	frames := runtime.CallersFrames(stack)
	for {
		f, more := frames.Next()
		switch {
		case strings.HasPrefix(f.Function, "github.com/nats-io/nats-server/"):
			return "servers"
		case strings.HasPrefix(f.Function, "github.com/upshift/upshift/services/coordinator"):
			return "coordinator"
		}
		if !more {
			return ""
		}
	}
}

func mib(b float64) float64 { return b / (1 << 20) }

// quantile of durations (sorted here), nearest rank; 0 for none.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	i := int(math.Ceil(q*float64(len(d)))) - 1
	return d[max(i, 0)]
}

// ms is a quantile in milliseconds for a report line, "-" for none.
func ms(d []time.Duration, q float64) string {
	if len(d) == 0 {
		return "-"
	}
	return fmt.Sprint(quantile(d, q).Milliseconds())
}

// Limits say how much the last third of a run may exceed the first third:
// a figure drifted when it grew by more than the ratio and by more than
// the floor (small absolute changes are noise on a shared machine).
type Limits struct {
	Latency      float64
	LatencyFloor time.Duration
	Memory       float64
	MemoryFloor  float64 // bytes
}

// Drift is one figure compared between the first and the last third.
type Drift struct {
	What          string
	First, Last   float64
	Unit          string
	Ratio, Floor  float64
	Drifted, None bool // None: too few samples in a third to judge
}

func (d Drift) String() string {
	if d.None {
		return fmt.Sprintf("%-22s not judged: no sample in the first or the last third", d.What)
	}
	verdict := "steady"
	if d.Drifted {
		verdict = "DRIFTED"
	}
	growth := math.Inf(1)
	if d.First > 0 {
		growth = d.Last / d.First
	}
	return fmt.Sprintf("%-22s first third %8.1f %s, last third %8.1f %s (x%.2f; drift: over x%.2f and +%.0f %s): %s",
		d.What, d.First, d.Unit, d.Last, d.Unit, growth, d.Ratio, d.Floor, d.Unit, verdict)
}

// judge compares the latencies of sagas submitted in the first and the
// last third of the run (after the warm-up), and the mean of the heap
// samples taken in each.
func judge(l Limits, first, last []time.Duration, hFirst, hLast []heapSample) []Drift {
	var out []Drift
	lat := func(what string, q float64) {
		d := Drift{What: what, Unit: "ms", Ratio: l.Latency, Floor: float64(l.LatencyFloor.Milliseconds())}
		if len(first) == 0 || len(last) == 0 {
			d.None = true
		} else {
			d.First, d.Last = float64(quantile(first, q).Milliseconds()), float64(quantile(last, q).Milliseconds())
			d.Drifted = d.Last > d.First*d.Ratio && d.Last-d.First > d.Floor
		}
		out = append(out, d)
	}
	lat("latency p50", 0.5)
	lat("latency p99", 0.99)
	mem := func(what string, of func(heapSample) float64) {
		d := Drift{What: what, Unit: "MiB", Ratio: l.Memory, Floor: mib(l.MemoryFloor)}
		if len(hFirst) == 0 || len(hLast) == 0 {
			d.None = true
		} else {
			mean := func(hs []heapSample) float64 {
				sum := 0.0
				for _, h := range hs {
					sum += of(h)
				}
				return mib(sum / float64(len(hs)))
			}
			d.First, d.Last = mean(hFirst), mean(hLast)
			d.Drifted = d.Last > d.First*d.Ratio && d.Last-d.First > d.Floor
		}
		out = append(out, d)
	}
	mem("heap (process)", func(h heapSample) float64 { return h.total })
	mem("heap (coordinator)", func(h heapSample) float64 { return h.coordinator })
	mem("heap (servers)", func(h heapSample) float64 { return h.servers })
	return out
}

// Result is how a soak went.
type Result struct {
	Submitted, Succeeded, RolledBack int
	// Stuck sagas never ended (Lost: of those, the ones the coordinator
	// does not know); Wrong ones ended otherwise than meant; Unknown ends
	// are of sagas the soak did not submit.
	Stuck, Lost, Wrong, Unknown []string
	Notes                       []string
	Duplicates, DeadLetters     int
	Drift                       []Drift
	SubmitErr                   error
	// Slowest are the sagas that took longest, each with the longest wait
	// between two entries of its audit log: where its time went.
	Slowest []string
}

// Drifted reports whether any figure drifted.
func (r Result) Drifted() bool {
	return slices.ContainsFunc(r.Drift, func(d Drift) bool { return d.Drifted })
}

// Ended reports whether every saga ended as meant, once, with nothing
// dead-lettered.
func (r Result) Ended() bool {
	return r.SubmitErr == nil && len(r.Stuck) == 0 && len(r.Wrong) == 0 && len(r.Unknown) == 0 && r.Duplicates == 0 && r.DeadLetters == 0
}

// Passed reports whether the soak passed.
func (r Result) Passed() bool { return r.Ended() && !r.Drifted() }

func (r Result) print(w io.Writer) {
	fmt.Fprintf(w, "sagas: %d submitted, %d succeeded, %d rolled back as meant; %d stuck (%d lost), %d ended otherwise than meant, "+
		"%d ends of unknown sagas, %d terminal events repeated, %d dead letters\n",
		r.Submitted, r.Succeeded, r.RolledBack, len(r.Stuck), len(r.Lost), len(r.Wrong), len(r.Unknown), r.Duplicates, r.DeadLetters)
	if r.SubmitErr != nil {
		fmt.Fprintln(w, "load stopped early:", r.SubmitErr)
	}
	show := func(what string, ids []string) {
		if len(ids) > 0 {
			fmt.Fprintf(w, "%s: %s\n", what, strings.Join(ids[:min(len(ids), 20)], ", "))
		}
	}
	show("stuck", r.Stuck)
	show("lost", r.Lost)
	show("wrong", r.Wrong)
	show("unknown", r.Unknown)
	for _, n := range r.Notes[:min(len(r.Notes), 20)] {
		fmt.Fprintln(w, "  "+n)
	}
	for _, l := range r.Slowest {
		fmt.Fprintln(w, "slowest: "+l)
	}
	for _, d := range r.Drift {
		fmt.Fprintln(w, "drift: "+d.String())
	}
	switch {
	case r.Passed():
		fmt.Fprintln(w, "verdict: PASS: every saga ended as meant, no drift")
	case r.Ended():
		fmt.Fprintln(w, "verdict: FAIL: drift")
	case r.Drifted():
		fmt.Fprintln(w, "verdict: FAIL: sagas not ended as meant, and drift")
	default:
		fmt.Fprintln(w, "verdict: FAIL: sagas not ended as meant")
	}
}
