// Package coordinatord assembles a coordinator process from its settings:
// the saga store it opens, the coordinator engine, its NATS API and its HTTP
// API. The coordinator's main runs it; `upshift dev` and the tests build
// their coordinators with it, so that each is wired one way.
package coordinatord

import (
	"context"
	"flag"
	"time"

	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/httpapi"
	"github.com/upshift/upshift/services/coordinator/sagastore"
	"github.com/upshift/upshift/services/coordinator/sagastore/kvstore"
)

// Settings of an upshift-coordinator process: flags, or UPSHIFT_* variables.
type Settings struct {
	// Store is where sagas are kept, StoreKV or StorePostgres (with
	// DatabaseURL).
	Store       string
	DatabaseURL service.Secret
	// PolicyFile, when given, replaces Engine.Policy's environments.
	PolicyFile string
	// HTTPAddr serves the HTTP API (empty: off); APIToken guards its writes,
	// and APITokensFile names its callers with their roles (httpapi.Config).
	HTTPAddr      string
	APIToken      service.Secret
	APITokensFile string
	// LeaseTTL is the lease on the background work the instances of a
	// store share (0: none, each instance does it). ArchiveMaxAge is how
	// long the KV store keeps a finished saga.
	LeaseTTL      time.Duration
	ArchiveMaxAge time.Duration
	// Engine tunes the coordinator. Its policy's approval settings,
	// concurrency, relay interval and consumer settings are flags; the rest
	// is set in code. Instance and Streams come from the process, and Store,
	// when set, is used instead of opening one.
	Engine coordinator.Config
}

// Register adds the process's own flags to fs, defaulting to s's values
// where it has them.
func (s *Settings) Register(fs *flag.FlagSet) {
	e := &s.Engine
	fs.StringVar(&s.Store, "store", or(s.Store, StoreKV), "where sagas are kept: kv (JetStream KV) or postgres")
	service.SecretVar(fs, &s.DatabaseURL, "database-url", s.DatabaseURL, "PostgreSQL URL, for --store postgres")
	fs.StringVar(&s.PolicyFile, "policy", s.PolicyFile, "policy file: per environment, approval, windows, rehearsal")
	fs.StringVar(&s.HTTPAddr, "http-addr", or(s.HTTPAddr, ":8080"), "address of the HTTP API (empty: off)")
	service.SecretVar(fs, &s.APIToken, "api-token", s.APIToken, "bearer token for the HTTP API's writes, the actor named in the body (empty: writes refused unless --api-tokens)")
	fs.StringVar(&s.APITokensFile, "api-tokens", s.APITokensFile,
		"file of the HTTP API's named tokens (sha256 of each) and their roles: read, approve, operate; then every route needs one")
	fs.DurationVar(&s.LeaseTTL, "lease-ttl", orDuration(s.LeaseTTL, 15*time.Second),
		"lease of the background work (relay, overdue sweep, in-flight count): one instance holds it, renewed every third; 0: every instance does it")
	fs.DurationVar(&s.ArchiveMaxAge, "archive-max-age", orDuration(s.ArchiveMaxAge, kvstore.DefaultArchiveMaxAge),
		"how long the kv store keeps a finished saga in its archive bucket")
	if e.Policy.ApprovalEnvironments == nil {
		e.Policy.ApprovalEnvironments = []string{"production"}
	}
	service.ListVar(fs, &e.Policy.ApprovalEnvironments, "approval-environments", e.Policy.ApprovalEnvironments,
		"comma-separated environments whose sagas wait for an approval (besides the policy file's)")
	if e.Policy.SignatureEnvironments == nil {
		e.Policy.SignatureEnvironments = []string{"production"}
	}
	service.ListVar(fs, &e.Policy.SignatureEnvironments, "signature-environments", e.Policy.SignatureEnvironments,
		"comma-separated environments whose upgrades must name a signed artifact, unless the policy file says requireSignature: false")
	fs.DurationVar(&e.Policy.ApprovalTimeout, "approval-timeout", orDuration(e.Policy.ApprovalTimeout, 24*time.Hour),
		"how long a saga waits for an approval, unless its environment says")
	if e.Concurrency == 0 {
		e.Concurrency = coordinator.DefaultConcurrency
	}
	fs.IntVar(&e.Concurrency, "concurrency", e.Concurrency, "inputs handled at once")
	fs.DurationVar(&e.RelayInterval, "relay-interval", orDuration(e.RelayInterval, 15*time.Second),
		"how often the outbox is searched for leftovers")
	if e.Consumer.MaxDeliver == 0 {
		// With back-off up to 30s: about ten minutes of a store outage.
		e.Consumer.MaxDeliver = 20
	}
	e.Consumer.Register(fs)
}

// Parts are a coordinator process's parts, built.
type Parts struct {
	Coordinator *coordinator.Coordinator
	// HTTP serves the HTTP API; nil when it is off.
	HTTP *service.HTTPServer
	// Close releases the store once every part has stopped.
	Close func()
}

// Components are what the process runs.
func (p Parts) Components() []service.Component {
	parts := []service.Component{p.Coordinator}
	if p.HTTP != nil {
		parts = append(parts, p.HTTP)
	}
	return parts
}

// Build assembles the parts: it loads the policy, opens the store, makes
// the coordinator and, if asked for, the HTTP API's server.
func Build(ctx context.Context, env service.Env, s Settings) (Parts, error) {
	cfg := s.Engine
	if s.PolicyFile != "" {
		policy, err := coordinator.LoadPolicy(s.PolicyFile)
		if err != nil {
			return Parts{}, err
		}
		policy.ApprovalEnvironments, policy.ApprovalTimeout = cfg.Policy.ApprovalEnvironments, cfg.Policy.ApprovalTimeout
		policy.SignatureEnvironments = cfg.Policy.SignatureEnvironments
		cfg.Policy = policy
	}
	if err := cfg.Policy.Check(); err != nil {
		return Parts{}, err
	}
	closeStore := func() {}
	// A store given in code comes without a lease, unless one is given.
	if cfg.Store == nil {
		var (
			store sagastore.Store
			close func()
		)
		// PostgreSQL may come up after the coordinator: wait for it.
		err := env.Wait(ctx, "the "+or(s.Store, StoreKV)+" saga store", StoreUnreachable, func(ctx context.Context) error {
			var err error
			store, close, err = OpenStore(ctx, s.Store, string(s.DatabaseURL), env.JS, env.Streams(), env.Log,
				kvstore.WithArchiveMaxAge(s.ArchiveMaxAge))
			return err
		})
		if err != nil {
			return Parts{}, err
		}
		cfg.Store, closeStore = store, close
		if s.LeaseTTL > 0 && cfg.Lease == nil {
			lease, err := OpenLease(ctx, s.Store, string(s.DatabaseURL), env.JS, env.Streams(), env.Instance, s.LeaseTTL)
			if err != nil {
				closeStore()
				return Parts{}, err
			}
			cfg.Lease = lease
		}
	}
	cfg.Instance, cfg.Streams = env.Instance, env.Streams()
	p := Parts{Coordinator: coordinator.New(env.NC, env.JS, cfg, env.Log, env.Registry), Close: closeStore}
	if s.HTTPAddr != "" {
		cfg := httpapi.Config{Token: string(s.APIToken)}
		if s.APITokensFile != "" {
			var err error
			if cfg.Tokens, err = httpapi.LoadTokens(s.APITokensFile); err != nil {
				closeStore()
				return Parts{}, err
			}
		}
		api, err := service.NewHTTPServer(s.HTTPAddr, httpapi.New(p.Coordinator, cfg, env.Log))
		if err != nil {
			closeStore()
			return Parts{}, err
		}
		p.HTTP = api
	}
	return p, nil
}

// Program is the coordinator process, for its main.
func Program(s *Settings) service.Program {
	return service.Program{Name: "coordinator", OpsAddr: ":9101", Flags: s.Register,
		Build: func(ctx context.Context, env service.Env) ([]service.Component, func(), error) {
			p, err := Build(ctx, env, *s)
			if err != nil {
				return nil, nil, err
			}
			return p.Components(), p.Close, nil
		}}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
