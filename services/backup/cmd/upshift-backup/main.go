// Command upshift-backup runs the backup service for the targets in its targets file.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"

	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/backup"
)

func main() {
	err := service.Run(context.Background(), program(), os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("backup stopped", "err", err)
		os.Exit(1)
	}
}

func program() service.Program {
	var targetsFile string
	return service.Program{Name: "backup", OpsAddr: ":9103",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&targetsFile, "targets", "/etc/upshift/targets.yaml", "the targets this instance serves")
		},
		Build: func(ctx context.Context, env service.Env) ([]service.Component, func(), error) {
			reg, err := targets.Load(targetsFile)
			if err != nil {
				return nil, nil, err
			}
			return []service.Component{backup.New(env.JS, backup.Config{Instance: env.Instance, Targets: reg, Streams: env.Streams()}, env.Log, env.Registry)}, nil, nil
		},
	}
}
