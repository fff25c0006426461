// Package devstack runs all of upshift in one process: an embedded NATS
// server with JetStream, the coordinator and the five services, built from
// the very packages each service's own main uses. `upshift dev` and the
// end-to-end tests start it; the demo scenario runs on it.
package devstack

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/artifact"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/natsembed"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/backup"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/coordinatord"
	"github.com/upshift/upshift/services/deploy"
	"github.com/upshift/upshift/services/notify"
	"github.com/upshift/upshift/services/precheck"
	"github.com/upshift/upshift/services/verify"
)

// Options configure a stack.
type Options struct {
	// Dir holds JetStream's storage and the artifact store.
	Dir string
	// Port for NATS clients; 0 picks a free one.
	Port int
	// Targets served by the phase services.
	Targets *targets.Registry
	// ArtifactSources are the URL prefixes packages may come from:
	// file, http(s) or objectstore (read through the stack's own NATS).
	ArtifactSources []string
	// TrustedKeys is precheck's file of minisign public keys ("": none).
	TrustedKeys string
	// PrometheusURL is the server the verify service's analyses query
	// (its --prometheus-url); empty: none.
	PrometheusURL string
	// Coordinator are the coordinator's settings, as its own process has
	// them: store, policy, HTTP API, tuning.
	Coordinator coordinatord.Settings
	// Consumer tunes the consumers of the five phase and notify services;
	// tests shorten its waits.
	Consumer consumer.Config
	// OpsAddr serves /metrics, /healthz and /readyz for the whole stack;
	// empty: off.
	OpsAddr string
	Log     *slog.Logger
	// NATSConfig, when set, is the nats-server configuration file the
	// embedded server runs with (its users and permissions).
	NATSConfig string
	// Connect, when set, gives each service a connection of its own, with
	// these options (its user, its TLS): name is the service's
	// ("coordinator", "precheck", "backup", "deploy", "verify", "notify"),
	// or "dev" for the stack's own (provisioning, the demo's client).
	// Unset, every part shares one connection.
	Connect func(name string) []nats.Option
	// NATSLog, when set, receives the embedded server's log.
	NATSLog server.Logger
	// URLs, when set, are the servers (comma separated: a cluster's
	// nodes) the stack connects to instead of starting its own; Dir then
	// holds the artifact store alone.
	URLs string
	// Replicas of every stream and bucket, as each service's --replicas;
	// 0: one.
	Replicas int
	// Phases, when set, run instead of the precheck, backup, deploy and
	// verify services (the soak runs the phase runtime with executors of
	// its own); each is built as its own process builds it.
	Phases []service.Program
	// JetStream are the options of every part's JetStream context (the
	// soak's loaded cluster needs more than the 5 s default time-out).
	JetStream []jetstream.JetStreamOpt
}

// Stack is a running all-in-one upshift.
type Stack struct {
	// Server is the embedded server; nil when Options.URLs are used.
	Server   *natsembed.Server
	NC       *nats.Conn
	JS       jetstream.JetStream
	Registry *prometheus.Registry
	Client   *api.Client
	// Ops and HTTP are the addresses of the operations server and of the
	// HTTP API, if any.
	Ops, HTTP string

	url    string
	conns  []*nats.Conn // the stack's own first
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Start starts the server and every service, each built by its own
// program as its own process builds it, and returns once all are consuming.
// Every part runs in one group: if one dies, the others stop, Done is
// closed and Err says why.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Stack{url: o.URLs, Registry: service.NewRegistry(), done: make(chan struct{})}
	if o.URLs == "" {
		srv, err := natsembed.Start(natsembed.Options{Dir: filepath.Join(o.Dir, "jetstream"), Port: o.Port,
			ConfigFile: o.NATSConfig, Logger: o.NATSLog})
		if err != nil {
			return nil, err
		}
		s.Server, s.url = srv, srv.URL()
	}
	common := service.Common{Replicas: o.Replicas}
	var err error
	fail := func(err error) (*Stack, error) {
		s.Stop()
		return nil, err
	}
	s.NC, s.JS, err = s.connect(o, "dev")
	if err != nil {
		return fail(err)
	}
	if err := streams.Ensure(ctx, s.JS, common.Streams(), streams.All...); err != nil {
		return fail(err)
	}
	env := func(name string) (service.Env, error) {
		e := service.Env{Common: common, Instance: name + "@dev", Log: o.Log, NC: s.NC, JS: s.JS, Registry: s.Registry}
		if o.Connect != nil {
			var err error
			if e.NC, e.JS, err = s.connect(o, name); err != nil {
				return e, err
			}
		}
		return e, nil
	}
	cenv, err := env("coordinator")
	if err != nil {
		return fail(err)
	}
	coord, err := coordinatord.Build(ctx, cenv, o.Coordinator)
	if err != nil {
		return fail(err)
	}
	parts := coord.Components()
	cleanups := []func(){coord.Close}
	closeAll := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			if cleanups[i] != nil {
				cleanups[i]()
			}
		}
	}
	defer func() {
		if closeAll != nil {
			closeAll()
		}
	}()
	s.Client = api.NewClient(s.NC)
	if coord.HTTP != nil {
		s.HTTP = coord.HTTP.Addr()
	}
	ps := phase.Settings{Targets: o.Targets, Consumer: o.Consumer}
	arts := artifact.Settings{Dir: filepath.Join(o.Dir, "artifacts"), Sources: o.ArtifactSources}
	programs := o.Phases
	if programs == nil {
		programs = []service.Program{
			precheck.Program(&precheck.Settings{Settings: ps, Artifacts: arts, TrustedKeys: o.TrustedKeys}),
			backup.Program(&backup.Settings{Settings: ps}),
			deploy.Program(&deploy.Settings{Settings: ps, Artifacts: arts}),
			verify.Program(&verify.Settings{Settings: ps, PrometheusURL: o.PrometheusURL}),
		}
	}
	for _, p := range slices.Concat(programs, []service.Program{notify.Program(&notify.Settings{Consumer: o.Consumer})}) {
		penv, err := env(p.Name)
		if err != nil {
			return fail(err)
		}
		built, cleanup, err := p.Build(ctx, penv)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", p.Name, err))
		}
		parts, cleanups = append(parts, built...), append(cleanups, cleanup)
	}
	checks := service.Checks(s.NC, parts)
	for _, nc := range s.conns[1:] {
		checks = append(checks, service.Connected(nc))
	}
	if o.OpsAddr != "" {
		ops, err := service.NewOpsServer(o.OpsAddr, s.Registry, checks...)
		if err != nil {
			return fail(err)
		}
		s.Ops = ops.Addr()
		parts = append(parts, ops)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	release := closeAll
	closeAll = nil // from now on, released once the group has stopped
	go func() {
		defer close(s.done)
		s.err = service.Group(rctx, parts)
		release()
	}()
	deadline := time.Now().Add(30 * time.Second)
	for _, check := range checks {
		for check() != nil {
			select {
			case <-s.done:
				return fail(s.Err())
			case <-ctx.Done():
				return fail(ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fail(fmt.Errorf("not ready after 30s: %w", check()))
			}
		}
	}
	return s, nil
}

// Done is closed once every part has stopped: after Stop, or when one died.
func (s *Stack) Done() <-chan struct{} { return s.done }

// Err returns why the stack stopped, once Done is closed; nil before, or
// after a Stop.
func (s *Stack) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// URL is the NATS URL of the stack: its server's, or the URLs it was
// given.
func (s *Stack) URL() string { return s.url }

// Stop drains every service, then stops the server.
func (s *Stack) Stop() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	for _, nc := range s.conns {
		nc.Close()
	}
	if s.Server != nil {
		s.Server.Stop()
	}
}

// connect opens the connection of the part called name.
func (s *Stack) connect(o Options, name string) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{nats.Name("upshift-" + name), nats.MaxReconnects(-1)}
	if o.Connect != nil {
		opts = append(opts, o.Connect(name)...)
	}
	nc, err := nats.Connect(s.url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect %s: %w", name, err)
	}
	s.conns = append(s.conns, nc)
	js, err := jetstream.New(nc, o.JetStream...)
	if err != nil {
		return nil, nil, err
	}
	return nc, js, nil
}
