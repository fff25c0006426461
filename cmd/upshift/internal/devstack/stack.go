// Package devstack runs all of upshift in one process: an embedded NATS
// server with JetStream, the coordinator and the five services, built from
// the very packages each service's own main uses. `upshift dev` and the
// end-to-end tests start it; the demo scenario runs on it.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/artifact"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/natsembed"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/backup"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/httpapi"
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
	// ArtifactSources are the URL prefixes packages may come from.
	ArtifactSources []string
	// Store is kv (default) or postgres, with DatabaseURL.
	Store       string
	DatabaseURL string
	Policy      coordinator.Policy
	// Consumer tunes every consumer; tests shorten its waits.
	Consumer consumer.Config
	// RelayInterval of the coordinator; default 5s.
	RelayInterval time.Duration
	// OpsAddr serves /metrics, /healthz and /readyz for the whole stack;
	// empty: off.
	OpsAddr string
	// HTTPAddr serves the coordinator's HTTP API; empty: off. APIToken
	// guards its writes.
	HTTPAddr string
	APIToken string
	Log      *slog.Logger
}

// Stack is a running all-in-one upshift.
type Stack struct {
	Server      *natsembed.Server
	NC          *nats.Conn
	JS          jetstream.JetStream
	Registry    *prometheus.Registry
	Coordinator *coordinator.Coordinator
	Client      *api.Client
	// Ops and HTTP are the addresses of the operations server and of the
	// HTTP API, if any.
	Ops, HTTP string

	cancel     context.CancelFunc
	closeStore func()
	wg         sync.WaitGroup
	mu         sync.Mutex
	errs       []error
}

type runner interface {
	Run(ctx context.Context) error
	Ready() bool
}

// Start starts the server and every service, and returns once all are
// consuming.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.RelayInterval == 0 {
		o.RelayInterval = 5 * time.Second
	}
	srv, err := natsembed.Start(natsembed.Options{Dir: filepath.Join(o.Dir, "jetstream"), Port: o.Port})
	if err != nil {
		return nil, err
	}
	s := &Stack{Server: srv, Registry: service.NewRegistry()}
	fail := func(err error) (*Stack, error) {
		s.Stop()
		return nil, err
	}
	s.NC, err = nats.Connect(srv.URL(), nats.Name("upshift-dev"), nats.MaxReconnects(-1))
	if err != nil {
		return fail(fmt.Errorf("connect: %w", err))
	}
	if s.JS, err = jetstream.New(s.NC); err != nil {
		return fail(err)
	}
	sc := streams.Config{}
	if err := streams.Ensure(ctx, s.JS, sc, streams.All...); err != nil {
		return fail(err)
	}
	store, closeStore, err := coordinator.OpenStore(ctx, o.Store, o.DatabaseURL, s.JS, sc, o.Log)
	if err != nil {
		return fail(err)
	}
	s.closeStore = closeStore
	arts := &artifact.Store{Dir: filepath.Join(o.Dir, "artifacts"), Sources: o.ArtifactSources}
	if len(arts.Sources) == 0 {
		return fail(errors.New("no artifact sources: say where packages may come from"))
	}
	log := o.Log
	s.Coordinator = coordinator.New(s.NC, s.JS, coordinator.Config{Instance: "coordinator@dev", Store: store,
		Policy: o.Policy, Streams: sc, Consumer: o.Consumer, RelayInterval: o.RelayInterval}, log, s.Registry)
	s.Client = api.NewClient(s.NC)
	parts := []runner{
		s.Coordinator,
		precheck.New(s.JS, precheck.Config{Instance: "precheck@dev", Targets: o.Targets, Artifacts: arts, Consumer: o.Consumer, Streams: sc}, log, s.Registry),
		backup.New(s.JS, backup.Config{Instance: "backup@dev", Targets: o.Targets, Consumer: o.Consumer, Streams: sc}, log, s.Registry),
		deploy.New(s.JS, deploy.Config{Instance: "deploy@dev", Targets: o.Targets, Artifacts: arts, Consumer: o.Consumer, Streams: sc}, log, s.Registry),
		verify.New(s.JS, verify.Config{Instance: "verify@dev", Targets: o.Targets, Consumer: o.Consumer, Streams: sc}, log, s.Registry),
		notify.New(s.JS, notify.Config{Instance: "notify@dev", Channels: []notify.Channel{notify.NewLogChannel(log)},
			Consumer: o.Consumer, Streams: sc}, log, s.Registry),
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	for _, p := range parts {
		s.run(rctx, p.Run)
	}
	if o.OpsAddr != "" {
		checks := []func() error{service.Connected(s.NC)}
		for _, p := range parts {
			checks = append(checks, service.Ready(fmt.Sprintf("%T", p), p.Ready))
		}
		ops, err := service.NewOpsServer(o.OpsAddr, s.Registry, checks...)
		if err != nil {
			return fail(err)
		}
		s.Ops = ops.Addr()
		s.run(rctx, ops.Run)
	}
	if o.HTTPAddr != "" {
		api, err := service.NewHTTPServer(o.HTTPAddr, httpapi.New(s.Coordinator, httpapi.Config{Token: o.APIToken}, log))
		if err != nil {
			return fail(err)
		}
		s.HTTP = api.Addr()
		s.run(rctx, api.Run)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range parts {
		for !p.Ready() {
			if err := s.Err(); err != nil {
				return fail(err)
			}
			if time.Now().After(deadline) {
				return fail(fmt.Errorf("%T not ready after 30s", p))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return s, nil
}

func (s *Stack) run(ctx context.Context, fn func(context.Context) error) {
	s.wg.Go(func() {
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			s.mu.Lock()
			s.errs = append(s.errs, err)
			s.mu.Unlock()
		}
	})
}

// Err returns what went wrong in a part of the stack so far.
func (s *Stack) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// URL is the NATS URL of the stack.
func (s *Stack) URL() string { return s.Server.URL() }

// Stop drains every service, then stops the server.
func (s *Stack) Stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	if s.closeStore != nil {
		s.closeStore()
	}
	if s.NC != nil {
		s.NC.Close()
	}
	s.Server.Stop()
}
