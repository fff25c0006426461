// Command upshift-deploy runs the deploy service for the targets in its targets file.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"

	"github.com/upshift/upshift/pkg/artifact"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/deploy"
)

func main() {
	err := service.Run(context.Background(), program(), os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("deploy stopped", "err", err)
		os.Exit(1)
	}
}

func program() service.Program {
	var targetsFile, artifactDir, sources string
	return service.Program{Name: "deploy", OpsAddr: ":9104",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&targetsFile, "targets", "/etc/upshift/targets.yaml", "the targets this instance serves")
			fs.StringVar(&artifactDir, "artifact-dir", "/var/lib/upshift/artifacts", "where verified packages are staged")
			fs.StringVar(&sources, "artifact-sources", "", "required: comma-separated URL prefixes packages may come from, e.g. https://artifacts.example.com/releases/,file:///srv/packages/")
		},
		Build: func(ctx context.Context, env service.Env) ([]service.Component, func(), error) {
			reg, err := targets.Load(targetsFile)
			if err != nil {
				return nil, nil, err
			}
			arts := &artifact.Store{Dir: artifactDir, Sources: service.List(sources)}
			if len(arts.Sources) == 0 {
				return nil, nil, errors.New("--artifact-sources (UPSHIFT_ARTIFACT_SOURCES) is required: the URL prefixes packages may come from")
			}
			return []service.Component{deploy.New(env.JS, deploy.Config{Instance: env.Instance, Targets: reg,
				Artifacts: arts, Streams: env.Streams()}, env.Log, env.Registry)}, nil, nil
		},
	}
}
