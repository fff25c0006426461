// Command upshift-notify runs the notify service: it routes saga events to teams and delivers notices.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"

	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/services/notify"
)

func main() {
	err := service.Run(context.Background(), program(), os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("notify stopped", "err", err)
		os.Exit(1)
	}
}

func program() service.Program {
	return service.Program{Name: "notify", OpsAddr: ":9106",
		Flags: func(fs *flag.FlagSet) {
			// Only the common flags.
		},
		Build: func(ctx context.Context, env service.Env) ([]service.Component, func(), error) {
			return []service.Component{notify.New(env.JS, notify.Config{Instance: env.Instance, Streams: env.Streams(),
				Channels: []notify.Channel{notify.NewLogChannel(env.Log.With("channel", "log"))}}, env.Log, env.Registry)}, nil, nil
		},
	}
}
