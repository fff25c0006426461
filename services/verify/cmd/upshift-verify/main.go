// Command upshift-verify runs the verify service for the targets in its targets file.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"

	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/verify"
)

func main() {
	err := service.Run(context.Background(), program(), os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("verify stopped", "err", err)
		os.Exit(1)
	}
}

func program() service.Program {
	var targetsFile string
	return service.Program{Name: "verify", OpsAddr: ":9105",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&targetsFile, "targets", "/etc/upshift/targets.yaml", "the targets this instance serves")
		},
		Build: func(ctx context.Context, env service.Env) ([]service.Component, func(), error) {
			reg, err := targets.Load(targetsFile)
			if err != nil {
				return nil, nil, err
			}
			// No client-wide time-out: the executor bounds each probe itself.
			return []service.Component{
				verify.New(env.JS, verify.Config{Instance: env.Instance, Targets: reg, Streams: env.Streams(),
					Client: &http.Client{}}, env.Log, env.Registry),
			}, nil, nil
		},
	}
}
