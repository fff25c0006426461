// Command upshift-backup runs the backup service for the targets in its
// targets file.
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
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/backup"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	err := runMain(context.Background(), log, os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		log.Error("backup stopped", "err", err)
		os.Exit(1)
	}
}

type config struct {
	service.Common
	Instance    string
	TargetsFile string
}

func parse(args []string) (config, *flag.FlagSet, error) {
	var c config
	fs := flag.NewFlagSet("upshift-backup", flag.ContinueOnError)
	c.Common.Register(fs, ":9103")
	host, _ := os.Hostname()
	fs.StringVar(&c.Instance, "instance", "backup@"+host, "name of this instance in events")
	fs.StringVar(&c.TargetsFile, "targets", "/etc/upshift/targets.yaml", "the targets this instance serves")
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
	reg, err := targets.Load(cfg.TargetsFile)
	if err != nil {
		return err
	}
	nc, js, err := service.Connect(cfg.Common, cfg.Instance, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	metrics := service.NewRegistry()
	svc := backup.New(js, backup.Config{
		Instance: cfg.Instance, Targets: reg, Streams: cfg.Streams(),
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
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}
