package coordinator_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// benchTargets are served by the phase services of BenchmarkSagas. A phase
// service runs one command per target at a time, so with few targets the
// sagas would queue behind each other at a target and concurrency 256 would
// measure that queue; each target costs every service two consumers, so not
// too many either.
var benchTargets = func() []string {
	out := make([]string, 32)
	for i := range out {
		out[i] = fmt.Sprintf("b%02d", i)
	}
	return out
}()

// benchConcurrency is how many sagas are in flight at once: a saga is
// submitted only when fewer are running.
var benchConcurrency = []int{1, 16, 256}

// boundFor is how long the JetStream bound is measured after each saga run.
const boundFor = time.Second

// BenchmarkSagas runs whole one-target sagas through one coordinator and the
// four phase services (executors that succeed at once), on each store, with
// 1, 16 and 256 sagas in flight, and then measures on the same embedded
// server what JetStream alone acknowledges. Per case it reports:
//
//   - sagas/s: sagas finished per second of the run (submit of the first to
//     end of the last). At least 2×concurrency sagas run whatever b.N is, so
//     that the semaphore is full for a while; ns/op is per saga.
//   - report-to-next-p50-ms, -p99-ms: from a phase service finishing a step
//     (its report's FinishedAt) to the coordinator's transition that
//     dispatched the saga's next step (that step's DispatchedAt: the time of
//     the transition, taken before the store write and the publish of the
//     command), over every pair of consecutive steps of every saga.
//   - heap-B/saga: heap in use (after a GC) half-way through the run, when
//     concurrency sagas are in flight, less the heap in use before the first
//     submit, divided by the sagas then in flight. The embedded NATS server,
//     the phase services and the benchmark itself share the process, so this
//     is an upper bound of the coordinator's own share; at concurrency 1 it
//     is mostly noise.
//   - js-writes/saga: messages stored in every stream, the buckets' streams
//     included, during the run (the sum of the streams' LastSeq after the
//     run less before it, so KV overwrites and messages a work queue removed
//     count), divided by the sagas. The PostgreSQL store's own writes are not
//     JetStream writes and are not counted.
//   - bound-acks/s: publishes with a message id (jetstream.WithMsgID)
//     acknowledged per second, by as many goroutines as sagas were in
//     flight, each waiting for its ack, into a stream configured as EVENTS,
//     for one second after the sagas ended.
//   - of-bound: sagas/s ÷ (bound-acks/s ÷ js-writes/saga). The denominator
//     is the saga rate JetStream would allow if a saga's writes were nothing
//     but such acknowledged publishes at this concurrency; of-bound is the
//     fraction of that the coordinator reaches (1 would mean JetStream sets
//     the pace).
//
// A log line per case adds the p50 of a saga's whole time and of a step's
// trip (dispatch to reported end) and splits js-writes/saga by stream.
//
// `make bench-sagas` runs it with a short -benchtime; nothing here is
// asserted.
// benchEngine is the coordinator's concurrency and mark delay in the saga
// benchmarks: the defaults, or UPSHIFT_BENCH_CONCURRENCY and
// UPSHIFT_BENCH_MARK_DELAY (a duration; negative: marks written at once),
// to compare settings with one binary.
func benchEngine(b *testing.B) (int, time.Duration) {
	var conc int
	var delay time.Duration
	if v := os.Getenv("UPSHIFT_BENCH_CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("UPSHIFT_BENCH_CONCURRENCY=%q: a positive number", v)
		}
		conc = n
	}
	if v := os.Getenv("UPSHIFT_BENCH_MARK_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d == 0 {
			b.Fatalf("UPSHIFT_BENCH_MARK_DELAY=%q: a duration, not zero", v)
		}
		delay = d
	}
	return conc, delay
}

func BenchmarkSagas(b *testing.B) {
	for _, store := range stores {
		for _, conc := range benchConcurrency {
			b.Run(fmt.Sprintf("store=%s/conc=%d", store.name, conc), func(b *testing.B) {
				benchSagas(b, store.open, conc)
			})
		}
	}
}

func benchSagas(b *testing.B, open storeOpener, conc int) {
	w := newWorldOn(b, open, benchTargets...)
	w.concurrency, w.marks = benchEngine(b)
	w.coordinator("c0")
	n := max(b.N, 2*conc)

	// A saga is done when the coordinator announces a terminal state; a
	// subscription sees it without loading sagas from the store, which
	// would be part of the load measured.
	var (
		mu       sync.Mutex
		finished = map[string]bool{}
	)
	slots := make(chan struct{}, conc)
	var inflight atomic.Int64
	all := make(chan struct{})
	sub, err := w.nc.Subscribe(events.SagaFilter(), func(m *nats.Msg) {
		env, err := events.Decode(m.Data)
		if err != nil {
			return
		}
		var e events.SagaEvent
		if events.Open(env, events.TypeSaga, &e) != nil || !saga.State(e.State).Terminal() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if finished[e.Saga] {
			return // published again by the relay
		}
		finished[e.Saga] = true
		inflight.Add(-1)
		<-slots
		if len(finished) == n {
			close(all)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := w.nc.Flush(); err != nil {
		b.Fatal(err)
	}

	before := jsWrites(b, w.js)
	idle := heapInUse()
	var (
		heap    = make(chan [2]int64, 1) // heap in use, sagas in flight
		sampled sync.WaitGroup
	)
	b.ResetTimer()
	start := time.Now()
	ids := make([]string, 0, n)
	for i := range n {
		slots <- struct{}{}
		inflight.Add(1)
		r := request("test", benchTargets[i%len(benchTargets)])
		long := sec(300)
		r.Spec.Timeouts = spec.Timeouts{Precheck: long, Backup: long, Deploy: long, Verify: long, Rollback: long}
		ids = append(ids, w.submit(r))
		// Sampled aside, so that submitting goes on and the semaphore stays
		// full while the collector runs.
		if i == n/2 {
			sampled.Go(func() {
				in := inflight.Load()
				h := heapInUse()
				heap <- [2]int64{h, (in + inflight.Load()) / 2}
			})
		}
	}
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		mu.Lock()
		b.Fatalf("%d of %d sagas finished within 5 minutes", len(finished), n)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	sampled.Wait()

	writes := jsWrites(b, w.js)
	t := readTimings(b, w, ids)
	bound := jetStreamBound(b, w.url, conc, boundFor)

	rate := float64(n) / elapsed.Seconds()
	perSaga := float64(writes.total-before.total) / float64(n)
	hs := <-heap
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n), "ns/op")
	b.ReportMetric(rate, "sagas/s")
	b.ReportMetric(ms(percentile(t.toNext, 50)), "report-to-next-p50-ms")
	b.ReportMetric(ms(percentile(t.toNext, 99)), "report-to-next-p99-ms")
	b.ReportMetric(float64(hs[0]-idle)/float64(max(hs[1], 1)), "heap-B/saga")
	b.ReportMetric(perSaga, "js-writes/saga")
	b.ReportMetric(bound, "bound-acks/s")
	b.ReportMetric(rate/(bound/perSaga), "of-bound")
	b.Logf("%d sagas, %d in flight at the heap's sample (%.1f MiB over idle); p50 of a saga created to done %.1f ms, "+
		"of a step dispatched to reported %.1f ms; JetStream writes per saga by stream: %s", n, hs[1], float64(hs[0]-idle)/(1<<20),
		ms(percentile(t.whole, 50)), ms(percentile(t.trip, 50)), writes.minus(before, n))
}

// heapInUse is the heap in use after a full collection.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC() // the first may leave what finalizers freed
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// writeCount is what every stream of the server has stored so far, by
// stream: its last sequence, so that messages since deleted (work-queue
// acknowledgements, KV history limits) still count.
type writeCount struct {
	total    uint64
	byStream map[string]uint64
}

func jsWrites(b *testing.B, js jetstream.JetStream) writeCount {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := writeCount{byStream: map[string]uint64{}}
	list := js.ListStreams(ctx)
	for info := range list.Info() {
		c.byStream[info.Config.Name] = info.State.LastSeq
		c.total += info.State.LastSeq
	}
	if err := list.Err(); err != nil {
		b.Fatal(err)
	}
	return c
}

// minus describes the writes per saga of each stream that grew since
// before, largest first.
func (c writeCount) minus(before writeCount, n int) string {
	type grew struct {
		name string
		n    uint64
	}
	var out []grew
	for name, seq := range c.byStream {
		if d := seq - before.byStream[name]; d > 0 {
			out = append(out, grew{name, d})
		}
	}
	slices.SortFunc(out, func(a, b grew) int { return int(b.n) - int(a.n) })
	parts := make([]string, 0, len(out))
	for _, g := range out {
		parts = append(parts, fmt.Sprintf("%s %.1f", g.name, float64(g.n)/float64(n)))
	}
	return strings.Join(parts, ", ")
}

// timings are read from the finished sagas' records.
type timings struct {
	// toNext: from each step's end as its service reported it to the
	// dispatch of the saga's next step.
	toNext []time.Duration
	// trip: from a step's dispatch to its end as reported: the command
	// through COMMANDS, its service, and the executor (instant here).
	trip []time.Duration
	// whole: from a saga's creation to its last update.
	whole []time.Duration
}

func readTimings(b *testing.B, w *world, ids []string) timings {
	var t timings
	for _, id := range ids {
		r, err := w.store.Load(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		if r.Saga.State != saga.StateSucceeded {
			b.Fatalf("saga %s ended %s (%s)", id, r.Saga.State, r.Saga.Reason)
		}
		steps := slices.Clone(r.Saga.Steps)
		slices.SortFunc(steps, func(a, b *saga.Step) int { return a.DispatchedAt.Compare(b.DispatchedAt) })
		for i, st := range steps {
			t.trip = append(t.trip, st.FinishedAt.Sub(st.DispatchedAt))
			if i > 0 {
				t.toNext = append(t.toNext, st.DispatchedAt.Sub(steps[i-1].FinishedAt))
			}
		}
		t.whole = append(t.whole, r.Saga.UpdatedAt.Sub(r.Saga.CreatedAt))
	}
	slices.Sort(t.toNext)
	slices.Sort(t.trip)
	slices.Sort(t.whole)
	return t
}

// percentile of sorted durations, by nearest rank.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// boundStream is configured as EVENTS, on subjects of its own so that no
// consumer of upshift sees what the bound publishes.
func boundStream(b testing.TB, js jetstream.JetStream) string {
	cfg, err := streams.Stream(events.StreamEvents, streamsCfg)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Name, cfg.Subjects, cfg.Description = "BENCH_BOUND", []string{"bench.bound.>"}, "the JetStream bound of the benchmarks"
	if _, err := js.CreateOrUpdateStream(context.Background(), cfg); err != nil {
		b.Fatal(err)
	}
	return "bench.bound"
}

// boundPayload is about the size of a saga event.
var boundPayload = []byte(strings.Repeat("x", 600))

// jetStreamBound returns how many publishes with a message id the server at
// url acknowledges per second from conc goroutines, each publishing one at a
// time and waiting for the ack, on a connection of their own.
func jetStreamBound(b testing.TB, url string, conc int, d time.Duration) float64 {
	nc, err := nats.Connect(url, nats.Name("bound"))
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	prefix := boundStream(b, js)
	var acked atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	for g := range conc {
		wg.Go(func() {
			subject := fmt.Sprintf("%s.%d", prefix, g)
			for ctx.Err() == nil {
				_, err := js.Publish(ctx, subject, boundPayload, jetstream.WithMsgID(uuid.NewString()))
				if err != nil {
					if ctx.Err() == nil {
						b.Errorf("bound publish: %v", err)
					}
					return
				}
				acked.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(acked.Load()) / time.Since(start).Seconds()
}

// BenchmarkJetStreamBound is the bound of BenchmarkSagas alone: b.N
// publishes with a message id into a stream configured as EVENTS, by 1, 16
// and 256 goroutines each waiting for its ack.
func BenchmarkJetStreamBound(b *testing.B) {
	for _, conc := range benchConcurrency {
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) {
			_, js := natstest.Start(b)
			prefix := boundStream(b, js)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for g := range conc {
				wg.Go(func() {
					subject := fmt.Sprintf("%s.%d", prefix, g)
					for next.Add(1) <= int64(b.N) {
						if _, err := js.Publish(context.Background(), subject, boundPayload,
							jetstream.WithMsgID(uuid.NewString())); err != nil {
							b.Errorf("publish: %v", err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "acks/s")
		})
	}
}

// BenchmarkSagasInFlight holds many one-target sagas in flight at once
// (every precheck hangs, so each saga waits in prechecking), on each store,
// and reports the heap grown per saga held: heap in use after a GC once
// every saga is stored in prechecking, less the heap before the first
// submit, divided by the sagas. The coordinator keeps nothing of a saga
// between its inputs (it loads the saga from the store for each), so what
// grows is mostly the embedded server's (buckets, streams, the commands
// waiting in COMMANDS), the phase services' and the benchmark's own: an
// upper bound of the coordinator's share. UPSHIFT_BENCH_IN_FLIGHT sets how
// many sagas (default 2,000; 10,000 for the figure);
// UPSHIFT_BENCH_HEAP_DIR, a folder for a heap profile taken then. Run once
// whatever b.N; nothing is asserted.
func BenchmarkSagasInFlight(b *testing.B) {
	n := 2000
	if v := os.Getenv("UPSHIFT_BENCH_IN_FLIGHT"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("UPSHIFT_BENCH_IN_FLIGHT=%q: want a positive number of sagas", v)
		}
	}
	for _, store := range stores {
		b.Run("store="+store.name, func(b *testing.B) {
			w := newWorldOn(b, store.open, benchTargets...)
			for _, t := range benchTargets {
				w.on("precheck.check."+t, "hang")
			}
			w.concurrency, w.marks = benchEngine(b)
			w.coordinator("c0")
			ctx := context.Background()
			idle := heapInUse()
			b.ResetTimer()
			start := time.Now()
			for i := range n {
				r := request("test", benchTargets[i%len(benchTargets)])
				long := sec(3600)
				r.Spec.Timeouts = spec.Timeouts{Precheck: long, Backup: long, Deploy: long, Verify: long, Rollback: long}
				w.submit(r)
			}
			natstest.Eventually(b, 10*time.Minute, fmt.Sprintf("%d sagas prechecking", n), func() bool {
				counts, err := w.store.CountActive(ctx)
				return err == nil && counts[saga.StatePrechecking] >= n
			})
			elapsed := time.Since(start)
			b.StopTimer()
			held := heapInUse()
			b.ReportMetric(float64(held-idle)/float64(n), "heap-B/saga-in-flight")
			b.ReportMetric(float64(n)/elapsed.Seconds(), "accepted/s")
			b.Logf("%d sagas in flight: heap %.1f MiB over idle", n, float64(held-idle)/(1<<20))
			// Where that heap is, for `go tool pprof -sample_index=inuse_space`.
			if dir := os.Getenv("UPSHIFT_BENCH_HEAP_DIR"); dir != "" {
				f, err := os.Create(filepath.Join(dir, "in-flight-"+store.name+".heap"))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				if err := pprof.WriteHeapProfile(f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFleetSaga runs one saga of UPSHIFT_BENCH_FLEET targets (default
// 10,000) in batches of 5%, through one coordinator on the PostgreSQL store
// (the KV store keeps a saga in one message and takes 200) and the four
// phase services, an instance of each per 500 targets, executors that
// succeed at once. It reports the saga's
// duration, its transitions per second, and the process's peak heap in use
// while it ran (sampled every 100 ms, less the heap before it): the
// embedded server, the phase services and the benchmark share the process,
// so that is an upper bound of the coordinator's share. Run once whatever
// b.N; nothing is asserted.
func BenchmarkFleetSaga(b *testing.B) {
	n := 10000
	if v := os.Getenv("UPSHIFT_BENCH_FLEET"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 || n > spec.MaxTargets {
			b.Fatalf("UPSHIFT_BENCH_FLEET=%q: want a number of targets, at most %d", v, spec.MaxTargets)
		}
	}
	targets := make([]string, n)
	for i := range targets {
		targets[i] = fmt.Sprintf("host-%05d", i)
	}
	// A phase service instance per 500 targets, as agents each serve a
	// few: one consumer of 10,000 filter subjects takes the server longer
	// to create than a service waits.
	const perInstance = 500
	w := newWorldOn(b, openPostgres, targets[:min(n, perInstance)]...)
	for i := perInstance; i < n; i += perInstance {
		w.services(targets[i:min(n, i+perInstance)]...)
	}
	w.concurrency, w.marks = benchEngine(b)
	// The relay at its default interval: it reads every saga with
	// messages not marked sent yet, and a fleet's saga always has some
	// (their marks wait for its next input), each read all its steps.
	w.relay = coordinator.DefaultRelayInterval
	var updates, loads atomic.Int64
	w.wrap = func(s sagastore.Store) sagastore.Store { return counting{s, &updates, &loads} }
	w.coordinator("c0")
	r := request("test", targets...)
	r.Spec.Rollout = spec.Rollout{BatchPercent: 5}
	long := sec(3600)
	r.Spec.Timeouts = spec.Timeouts{Precheck: long, Backup: long, Deploy: long, Verify: long, Rollback: long}
	idle := heapInUse()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			}
		}
	}()
	b.ResetTimer()
	start := time.Now()
	id := w.submit(r)
	// Polled by its row, not read whole (every step): the benchmark's own
	// reads would be most of what the store does.
	natstest.Eventually(b, 30*time.Minute, "the fleet's saga to end", func() bool {
		l, err := w.store.List(context.Background(), sagastore.Filter{Limit: 1})
		return err == nil && len(l) == 1 && l[0].State.Terminal()
	})
	elapsed := time.Since(start)
	s := w.wait(id, natstest.Patience, saga.StateSucceeded)
	b.StopTimer()
	close(stop)
	<-sampled
	b.ReportMetric(elapsed.Seconds(), "s/saga")
	b.ReportMetric(float64(s.Seq)/elapsed.Seconds(), "transitions/s")
	b.ReportMetric(float64(int64(peak.Load())-idle)/(1<<20), "peak-heap-MiB")
	b.Logf("%d targets in %d batches: %d steps, %d transitions in %s: %d writes, %d reads of the saga",
		n, len(s.Batches), len(s.Steps), s.Seq, elapsed.Round(time.Millisecond), updates.Load(), loads.Load())
}
