// Command upshift-coordinator runs a saga coordinator instance, with its
// NATS and HTTP APIs. Several may run at once against one store.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"time"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/httpapi"
)

func main() {
	err := service.Run(context.Background(), program(), os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("coordinator stopped", "err", err)
		os.Exit(1)
	}
}

type config struct {
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

func (c *config) register(fs *flag.FlagSet) {
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
}

func program() service.Program {
	var cfg config
	return service.Program{Name: "coordinator", OpsAddr: ":9101", Flags: cfg.register,
		Build: func(ctx context.Context, env service.Env) ([]service.Component, func(), error) {
			var policy coordinator.Policy
			if cfg.PolicyFile != "" {
				var err error
				if policy, err = coordinator.LoadPolicy(cfg.PolicyFile); err != nil {
					return nil, nil, err
				}
			}
			policy.ApprovalEnvironments, policy.ApprovalTimeout = service.List(cfg.ApprovalEnvironments), cfg.ApprovalTimeout
			if err := policy.Check(); err != nil {
				return nil, nil, err
			}
			store, closeStore, err := coordinator.OpenStore(ctx, cfg.Store, string(cfg.DatabaseURL), env.JS, env.Streams(), env.Log)
			if err != nil {
				return nil, nil, err
			}
			c := coordinator.New(env.NC, env.JS, coordinator.Config{
				Instance: env.Instance, Store: store, Streams: env.Streams(), Policy: policy,
				Concurrency: cfg.Concurrency, RelayInterval: cfg.RelayInterval,
				Consumer: consumer.Config{AckWait: cfg.AckWait, MaxDeliver: cfg.MaxDeliver},
			}, env.Log, env.Registry)
			parts := []service.Component{c}
			if cfg.HTTPAddr != "" {
				api, err := service.NewHTTPServer(cfg.HTTPAddr, httpapi.New(c, httpapi.Config{Token: string(cfg.APIToken)}, env.Log))
				if err != nil {
					closeStore()
					return nil, nil, err
				}
				parts = append(parts, api)
			}
			return parts, closeStore, nil
		},
	}
}
