// Command soak runs upshift under a steady load for a while and says
// whether it held: `make soak DURATION=10m`, or
// `go run ./cmd/upshift/internal/soak -h`.
//
// Three embedded NATS servers on loopback form a JetStream cluster (every
// stream and bucket with three replicas); the coordinator and notify run
// as `upshift dev` runs them (devstack), and the four phase services run
// the real phase runtime (consumers, records, registry) with instant
// executors, a share of whose verifications fail, so that those sagas roll
// back. The soak measures upshift's orchestration, not the executors' work
// on targets, which their own benchmarks measure.
//
// Every interval it writes a line: sagas submitted so far, those that
// ended since the last line (succeeded, rolled back, other) with the p50
// and p99 of their time from request to terminal event, sagas in flight,
// the heap (whole process, and the shares allocated by the coordinator's
// and the servers' code, estimated from the heap profile), the upshift
// consumers' pending and unacknowledged messages, and the dead letters. At
// the end it compares the sagas submitted in the last third of the run
// with those of the first third (after a warm-up), and the heap read in
// each, and exits 1 if a figure drifted, if a saga is stuck, lost or ended
// otherwise than meant, or if anything was dead-lettered.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/upshift/upshift/pkg/service"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, runs the soak and returns the exit status: 0 passed, 1
// failed, 2 bad usage.
func run(ctx context.Context, args []string, out, errOut io.Writer) int {
	cfg, err := parse(args, errOut)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(errOut, "soak:", err)
		return 2
	}
	ctx, stop := service.Interrupted(ctx)
	defer stop()
	res, err := Run(ctx, cfg, out)
	if err != nil {
		fmt.Fprintln(errOut, "soak:", err)
		return 1
	}
	if !res.Passed() {
		return 1
	}
	return 0
}

func parse(args []string, errOut io.Writer) (Config, error) {
	var cfg Config
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Minute, "how long requests are submitted")
	fs.Float64Var(&cfg.Rate, "rate", 1, "requests per second")
	fs.IntVar(&cfg.FailPercent, "fail-percent", 10, "share of requests whose verification fails (they roll back), 0 to 100")
	fs.IntVar(&cfg.Targets, "targets", 16, "targets the requests go to, in turn (one target per request)")
	fs.DurationVar(&cfg.Interval, "interval", time.Minute, "time between two report lines")
	fs.DurationVar(&cfg.Warmup, "warmup", -1, "start left out of the drift verdict (-1: one interval, or a tenth of the duration if that is less)")
	fs.DurationVar(&cfg.Drain, "drain", 2*time.Minute, "how long sagas still running after the load may take to end before they count as stuck")
	fs.Float64Var(&cfg.Limits.Latency, "latency-drift", 1.5, "latency drifted if the last third's exceeds the first third's by this ratio ...")
	fs.DurationVar(&cfg.Limits.LatencyFloor, "latency-floor", 250*time.Millisecond, "... and by more than this")
	fs.Float64Var(&cfg.Limits.Memory, "memory-drift", 1.25, "a heap figure drifted if the last third's mean exceeds the first third's by this ratio ...")
	floor := fs.Float64("memory-floor-mib", 8, "... and by more than this many MiB")
	logFile := fs.String("log", "", "file for the services' log (JSON, warnings and errors); empty: none")
	// The coordinator as its process runs by default, its HTTP API on a
	// port of its own.
	cfg.Coordinator.HTTPAddr = "127.0.0.1:0"
	cfg.Coordinator.Register(flag.NewFlagSet("coordinator", flag.ContinueOnError))
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case cfg.Duration <= 0 || cfg.Interval <= 0 || cfg.Drain <= 0:
		return cfg, errors.New("-duration, -interval and -drain must be positive")
	case cfg.Rate <= 0 || cfg.Rate > 1000:
		return cfg, errors.New("-rate must be above 0 and at most 1000")
	case cfg.FailPercent < 0 || cfg.FailPercent > 100:
		return cfg, errors.New("-fail-percent must be between 0 and 100")
	case cfg.Targets < 1 || cfg.Targets > 100:
		return cfg, errors.New("-targets must be between 1 and 100")
	case cfg.Limits.Latency < 1 || cfg.Limits.Memory < 1 || *floor < 0 || cfg.Limits.LatencyFloor < 0:
		return cfg, errors.New("the drift ratios must be at least 1, their floors not negative")
	}
	if cfg.Warmup < 0 {
		cfg.Warmup = min(cfg.Interval, cfg.Duration/10)
	}
	cfg.Limits.MemoryFloor = *floor * (1 << 20)
	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return cfg, err
		}
		cfg.Log = slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return cfg, nil
}
