package notify

import (
	"context"
	"flag"
	"log/slog"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/service"
)

// Settings of an upshift-notify process: flags, or UPSHIFT_* variables.
// A channel's settings (its endpoint, where its secret is read from) belong
// here, and channels() builds it.
type Settings struct {
	// Consumer tunes the router's and the deliverer's consumers.
	Consumer consumer.Config
}

// Register adds the process's own flags to fs.
func (s *Settings) Register(fs *flag.FlagSet) { s.Consumer.Register(fs) }

// channels are the channels the settings configure, every notice going to
// each: today the log.
func (s Settings) channels(log *slog.Logger) ([]Channel, error) {
	return []Channel{NewLogChannel(log.With("channel", "log"))}, nil
}

// Program is the notify process, built from its settings: its main runs it,
// and `upshift dev` and the tests build their notify service with it.
func Program(s *Settings) service.Program {
	return service.Program{Name: "notify", OpsAddr: ":9106", Flags: s.Register,
		Build: func(_ context.Context, env service.Env) ([]service.Component, func(), error) {
			channels, err := s.channels(env.Log)
			if err != nil {
				return nil, nil, err
			}
			return []service.Component{New(env.JS, Config{Instance: env.Instance, Channels: channels,
				Consumer: s.Consumer, Streams: env.Streams()}, env.Log, env.Registry)}, nil, nil
		}}
}
