// Command upshift-coordinator runs a saga coordinator instance. Several may
// run at once against one store.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/oklog/run"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/httpapi"
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
	DatabaseURL          service.Secret
	PolicyFile           string
	ApprovalEnvironments string
	ApprovalTimeout      time.Duration
	HTTPAddr             string
	APIToken             service.Secret
	Concurrency          int
	RelayInterval        time.Duration
	AckWait              time.Duration
	MaxDeliver           int
}

func parse(args []string) (config, *flag.FlagSet, error) {
	var c config
	fs := flag.NewFlagSet("upshift-coordinator", flag.ContinueOnError)
	c.Common.Register(fs, ":9101")
	host, _ := os.Hostname()
	fs.StringVar(&c.Instance, "instance", "coordinator@"+host, "name of this instance in events")
	fs.StringVar(&c.Store, "store", coordinator.StoreKV, "where sagas are kept: kv (JetStream KV) or postgres")
	fs.Var(&c.DatabaseURL, "database-url", "PostgreSQL URL, for --store postgres")
	fs.StringVar(&c.PolicyFile, "policy", "", "policy file: per environment, approval, windows, rehearsal")
	fs.StringVar(&c.ApprovalEnvironments, "approval-environments", "production", "comma-separated environments whose sagas wait for an approval (besides the policy file's)")
	fs.DurationVar(&c.ApprovalTimeout, "approval-timeout", 24*time.Hour, "how long a saga waits for an approval, unless its environment says")
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "address of the HTTP API (empty: off)")
	fs.Var(&c.APIToken, "api-token", "bearer token for the HTTP API's writes (empty: writes refused)")
	fs.IntVar(&c.Concurrency, "concurrency", 8, "inputs handled at once")
	fs.DurationVar(&c.RelayInterval, "relay-interval", 15*time.Second, "how often the outbox is searched for leftovers")
	fs.DurationVar(&c.AckWait, "ack-wait", 30*time.Second, "how long an input may go unacknowledged before it is redelivered (a crashed instance's inputs)")
	fs.IntVar(&c.MaxDeliver, "max-deliver", 20, "deliveries of an input before it is dead-lettered (with back-off up to 30s: about ten minutes of a store outage)")
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
	var policy coordinator.Policy
	if cfg.PolicyFile != "" {
		if policy, err = coordinator.LoadPolicy(cfg.PolicyFile); err != nil {
			return err
		}
	}
	policy.ApprovalEnvironments, policy.ApprovalTimeout = split(cfg.ApprovalEnvironments), cfg.ApprovalTimeout
	store, closeStore, err := coordinator.OpenStore(ctx, cfg.Store, string(cfg.DatabaseURL), js, cfg.Streams(), log)
	if err != nil {
		return err
	}
	defer closeStore()
	metrics := service.NewRegistry()
	c := coordinator.New(nc, js, coordinator.Config{
		Instance: cfg.Instance, Store: store, Streams: cfg.Streams(), Policy: policy,
		Concurrency: cfg.Concurrency, RelayInterval: cfg.RelayInterval,
		Consumer: consumer.Config{AckWait: cfg.AckWait, MaxDeliver: cfg.MaxDeliver},
	}, log, metrics)

	var g run.Group
	cctx, cancel := context.WithCancel(ctx)
	g.Add(func() error { return c.Run(cctx) }, func(error) { cancel() })
	if cfg.HTTPAddr != "" {
		api, err := service.NewHTTPServer(cfg.HTTPAddr, httpapi.New(c, httpapi.Config{Token: string(cfg.APIToken)}, log))
		if err != nil {
			return err
		}
		hctx, hcancel := context.WithCancel(ctx)
		g.Add(func() error { return api.Run(hctx) }, func(error) { hcancel() })
	}
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
