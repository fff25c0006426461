// Command upshift-notify runs the notify service: it routes the
// coordinator's saga events to the teams concerned and delivers the notices.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/oklog/run"

	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/services/notify"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	err := runMain(context.Background(), log, os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		log.Error("notify stopped", "err", err)
		os.Exit(1)
	}
}

type config struct {
	service.Common
	Instance string
}

func parse(args []string) (config, *flag.FlagSet, error) {
	var c config
	fs := flag.NewFlagSet("upshift-notify", flag.ContinueOnError)
	c.Common.Register(fs, ":9106")
	host, _ := os.Hostname()
	fs.StringVar(&c.Instance, "instance", "notify@"+host, "name of this instance in events")
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
	metrics := service.NewRegistry()
	svc := notify.New(js, notify.Config{
		Instance: cfg.Instance, Channels: []notify.Channel{notify.NewLogChannel(log.With("channel", "log"))},
		Streams: cfg.Streams(),
	}, log, metrics)

	ctx, stop := service.Interrupted(ctx)
	defer stop()
	var g run.Group
	sctx, cancel := context.WithCancel(ctx)
	g.Add(func() error { return svc.Run(sctx) }, func(error) { cancel() })
	if cfg.OpsAddr != "" {
		ops, err := service.NewOpsServer(cfg.OpsAddr, metrics, service.Connected(nc), service.Ready("consumers", svc.Ready))
		if err != nil {
			return err
		}
		octx, ocancel := context.WithCancel(ctx)
		g.Add(func() error { return ops.Run(octx) }, func(error) { ocancel() })
	}
	if err := g.Run(); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}
