package service

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

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
}

// Env is what Build gets.
type Env struct {
	Common
	Instance string
	Log      *slog.Logger
	NC       *nats.Conn
	JS       jetstream.JetStream
	Registry *prometheus.Registry
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
	if env.NC, env.JS, err = Connect(env.Common, env.Instance, env.Log); err != nil {
		return err
	}
	defer env.NC.Close()
	env.Registry = NewRegistry()

	ctx, stop := Interrupted(ctx)
	defer stop()
	parts, cleanup, err := p.Build(ctx, env)
	if err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	if cleanup != nil {
		defer cleanup()
	}
	checks := []func() error{Connected(env.NC)}
	for _, c := range parts {
		if r, ok := c.(interface{ Ready() bool }); ok {
			checks = append(checks, Ready(fmt.Sprintf("%T", c), r.Ready))
		}
	}
	if env.OpsAddr != "" {
		ops, err := NewOpsServer(env.OpsAddr, env.Registry, checks...)
		if err != nil {
			return err
		}
		parts = append(parts, ops)
	}
	var g run.Group
	for _, c := range parts {
		cctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return c.Run(cctx) }, func(error) { cancel() })
	}
	if err := g.Run(); err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	return nil
}
