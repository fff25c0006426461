package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
)

// Component is a long-running part of a service: it runs until its context
// is cancelled, then drains and returns.
type Component interface {
	Run(ctx context.Context) error
}

// Program is what a service's main declares; Run does the rest the same way
// for every service.
type Program struct {
	// Name of the service, e.g. "precheck": the binary is upshift-<name>.
	Name string
	// OpsAddr is the default address of /metrics, /healthz and /readyz.
	OpsAddr string
	// Flags registers the service's own flags.
	Flags func(fs *flag.FlagSet)
	// Build wires the service once flags are parsed and NATS is connected.
	// It returns what to run; a component with a Ready() bool method is a
	// ready check. cleanup, if not nil, runs after every component stopped.
	Build func(ctx context.Context, env Env) (parts []Component, cleanup func(), err error)
	// Connects says Build opens the process's NATS connections itself,
	// from env.Common (the agent: one per phase, each as its own user):
	// env.NC and env.JS are nil, and Build's parts carry the connections'
	// ready checks.
	Connects bool
}

// Env is what Build gets.
type Env struct {
	Common
	Instance string
	Log      *slog.Logger
	NC       *nats.Conn
	JS       jetstream.JetStream
	Registry *prometheus.Registry
	// Starting is the process's readiness while Build waits for what it
	// needs (Wait reports through it); nil outside Run.
	Starting *Starting
}

// Main runs p with the process's arguments until it stops and returns the
// exit status for main to exit with: 0, or 1 once the reason is logged.
func Main(p Program) int {
	err := Run(context.Background(), p, os.Args[1:])
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("upshift-"+p.Name+" stopped", "err", err)
	return 1
}

// Run parses args (then UPSHIFT_* variables), logs the settings (secrets
// masked), connects to NATS, builds the program and runs its components and
// the ops server until SIGINT or SIGTERM, or until one of them fails; then
// every component drains. flag.ErrHelp is returned for -h.
func Run(ctx context.Context, p Program, args []string) error {
	var env Env
	fs := flag.NewFlagSet("upshift-"+p.Name, flag.ContinueOnError)
	env.Common.Register(fs, p.OpsAddr)
	host, _ := os.Hostname()
	fs.StringVar(&env.Instance, "instance", p.Name+"@"+host, "name of this instance in events")
	if p.Flags != nil {
		p.Flags(fs)
	}
	if err := Parse(fs, args); err != nil {
		return err
	}
	log, err := NewLogger(os.Stderr, env.LogLevel, env.LogFormat)
	if err != nil {
		return err
	}
	env.Log = log
	env.Log.Info("starting", Settings(fs)...)
	env.Registry = NewRegistry()
	env.Starting = newStarting()

	ctx, stop := Interrupted(ctx)
	defer stop()
	// The ops server runs from the start: while the process waits for NATS
	// or its store, /healthz says it lives and /readyz what it waits for.
	var ops *running
	if env.OpsAddr != "" {
		srv, err := NewOpsServer(env.OpsAddr, env.Registry, env.Starting.Check)
		if err != nil {
			return err
		}
		ops = start(srv)
		defer ops.stop()
	}
	if !p.Connects {
		if env.NC, env.JS, err = env.Connect(ctx, env.Common, env.Instance, env.Log); err != nil {
			return err
		}
		defer env.NC.Close()
	}
	parts, cleanup, err := p.Build(ctx, env)
	if err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	if cleanup != nil {
		defer cleanup()
	}
	env.Starting.started(Checks(env.NC, parts))
	if ops != nil {
		parts = append(parts, ops)
	}
	if err := Group(ctx, parts); err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	return nil
}

// running is a component started before the others (the ops server), as a
// component of the group: it stops when the group stops it, and the group
// stops when it fails.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func start(c Component) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() { r.err = c.Run(ctx); close(r.done) }()
	return r
}

// Run waits for ctx to end, then stops the component; or returns its error
// if it ends first.
func (r *running) Run(ctx context.Context) error {
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return r.stop()
	}
}

func (r *running) stop() error {
	r.cancel()
	<-r.done
	return r.err
}

// Checks are the ready checks of a process: its NATS connection (if not
// nil), and every part with a Check() error or a Ready() bool method.
func Checks(nc *nats.Conn, parts []Component) []func() error {
	var checks []func() error
	if nc != nil {
		checks = append(checks, Connected(nc))
	}
	for _, c := range parts {
		switch r := c.(type) {
		case interface{ Check() error }: // says why
			checks = append(checks, r.Check)
		case interface{ Ready() bool }:
			checks = append(checks, Ready(fmt.Sprintf("%T", c), r.Ready))
		}
	}
	return checks
}

// Group runs every part of a process until ctx ends or one part returns:
// then every other part is stopped, and Group returns once all have, with
// every part's error. A part that returns while ctx is live, even with nil,
// has died: the process must not go on without it.
func Group(ctx context.Context, parts []Component) error {
	var (
		g    run.Group
		mu   sync.Mutex
		errs []error
	)
	for _, c := range parts {
		cctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			err := c.Run(cctx)
			if err == nil && cctx.Err() == nil {
				err = fmt.Errorf("%T stopped by itself", c)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return err
		}, func(error) { cancel() })
	}
	// A group of nothing would return at once; wait for the end instead.
	wctx, wcancel := context.WithCancel(ctx)
	g.Add(func() error { <-wctx.Done(); return nil }, func(error) { wcancel() })
	g.Run()
	return errors.Join(errs...)
}
