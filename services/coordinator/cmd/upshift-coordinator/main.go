// Command upshift-coordinator runs a saga coordinator instance. Several may
// run at once against one store.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/oklog/run"

	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/sagastore/kvstore"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	err := runMain(context.Background(), log, os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		log.Error("coordinator stopped", "err", err)
		os.Exit(1)
	}
}

type config struct {
	service.Common
	Instance             string
	Store                string
	ApprovalEnvironments string
	ApprovalTimeout      time.Duration
	Concurrency          int
	RelayInterval        time.Duration
}

func parse(args []string) (config, *flag.FlagSet, error) {
	var c config
	fs := flag.NewFlagSet("upshift-coordinator", flag.ContinueOnError)
	c.Common.Register(fs, ":9101")
	host, _ := os.Hostname()
	fs.StringVar(&c.Instance, "instance", "coordinator@"+host, "name of this instance in events")
	fs.StringVar(&c.Store, "store", "kv", "where sagas are kept: kv (JetStream KV)")
	fs.StringVar(&c.ApprovalEnvironments, "approval-environments", "production", "comma-separated environments whose sagas wait for an approval")
	fs.DurationVar(&c.ApprovalTimeout, "approval-timeout", 24*time.Hour, "how long a saga waits for an approval")
	fs.IntVar(&c.Concurrency, "concurrency", 8, "inputs handled at once")
	fs.DurationVar(&c.RelayInterval, "relay-interval", 15*time.Second, "how often the outbox is searched for leftovers")
	return c, fs, service.Parse(fs, args)
}

func runMain(ctx context.Context, log *slog.Logger, args []string) error {
	cfg, fs, err := parse(args)
	if err != nil {
		return err
	}
	if log, err = service.NewLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat); err != nil {
		return err
	}
	log.Info("starting", service.Settings(fs)...)
	nc, js, err := service.Connect(cfg.Common, cfg.Instance, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, stop := service.Interrupted(ctx)
	defer stop()
	if cfg.Store != "kv" {
		return fmt.Errorf("store %q: only kv is available", cfg.Store)
	}
	store, err := kvstore.Open(ctx, js, cfg.Streams())
	if err != nil {
		return err
	}
	metrics := service.NewRegistry()
	c := coordinator.New(nc, js, coordinator.Config{
		Instance: cfg.Instance, Store: store, Streams: cfg.Streams(),
		Concurrency: cfg.Concurrency, RelayInterval: cfg.RelayInterval,
		Policy: coordinator.Policy{ApprovalEnvironments: split(cfg.ApprovalEnvironments), ApprovalTimeout: cfg.ApprovalTimeout},
	}, log, metrics)

	var g run.Group
	cctx, cancel := context.WithCancel(ctx)
	g.Add(func() error { return c.Run(cctx) }, func(error) { cancel() })
	if cfg.OpsAddr != "" {
		ops, err := service.NewOpsServer(cfg.OpsAddr, metrics, service.Connected(nc), service.Ready("coordinator", c.Ready))
		if err != nil {
			return err
		}
		octx, ocancel := context.WithCancel(ctx)
		g.Add(func() error { return ops.Run(octx) }, func(error) { ocancel() })
	}
	return g.Run()
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
