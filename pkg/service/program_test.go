package service_test

import (
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/service"
)

type part func(ctx context.Context) error

func (p part) Run(ctx context.Context) error { return p(ctx) }

func TestRunStopsEveryComponentWhenOneFails(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	running, stopped := make(chan struct{}), make(chan struct{})
	var flagSeen string
	p := service.Program{Name: "test", OpsAddr: "127.0.0.1:0",
		Flags: func(fs *flag.FlagSet) { fs.StringVar(&flagSeen, "thing", "", "") },
		Build: func(ctx context.Context, env service.Env) ([]service.Component, func(), error) {
			if env.JS == nil || env.Registry == nil || env.Instance == "" {
				t.Errorf("env %+v", env)
			}
			return []service.Component{
				part(func(ctx context.Context) error { close(running); <-ctx.Done(); close(stopped); return nil }),
				// Fails while the other runs.
				part(func(ctx context.Context) error {
					select {
					case <-running:
						return errors.New("disk full")
					case <-time.After(natstest.Patience):
						return errors.New("the other component never started")
					}
				}),
			}, func() {}, nil
		}}
	err := service.Run(context.Background(), p, []string{"--nats-url", srv.URL(), "--thing", "x", "--log-level", "error"})
	if err == nil || !strings.Contains(err.Error(), "test: disk full") {
		t.Fatalf("err %v", err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("the other component was not stopped")
	}
	if flagSeen != "x" {
		t.Fatalf("own flag %q", flagSeen)
	}
}

func TestRunReportsABuildError(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	p := service.Program{Name: "test", Build: func(ctx context.Context, env service.Env) ([]service.Component, func(), error) {
		return nil, nil, errors.New("no targets file")
	}}
	if err := service.Run(context.Background(), p, []string{"--nats-url", srv.URL(), "--ops-addr", ""}); err == nil || !strings.Contains(err.Error(), "no targets file") {
		t.Fatalf("err %v", err)
	}
	if err := service.Run(context.Background(), p, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("help: %v", err)
	}
}

// A part that returns without being asked to, even without an error, has
// died: the group stops the others and says which.
func TestGroupStopsWhenAPartEndsByItself(t *testing.T) {
	t.Parallel()
	stopped := make(chan struct{})
	err := service.Group(context.Background(), []service.Component{
		part(func(ctx context.Context) error { <-ctx.Done(); close(stopped); return nil }),
		part(func(ctx context.Context) error { return nil }),
	})
	if err == nil || !strings.Contains(err.Error(), "stopped by itself") {
		t.Fatalf("err %v", err)
	}
	<-stopped
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := service.Group(ctx, []service.Component{part(func(ctx context.Context) error { <-ctx.Done(); return nil })}); err != nil {
		t.Fatalf("a group asked to stop: %v", err)
	}
	if err := service.Group(ctx, nil); err != nil {
		t.Fatalf("an empty group asked to stop: %v", err)
	}
}
