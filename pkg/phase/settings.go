package phase

import (
	"context"
	"flag"
	"log/slog"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/targets"
)

// Settings are what every phase service's operator sets: the targets it
// serves and how its consumers behave. Each service embeds them in its own
// settings and registers them with its flags.
type Settings struct {
	// TargetsFile lists the targets this instance serves.
	TargetsFile string
	// Targets, when set, is served instead of TargetsFile's: `upshift dev`
	// and tests build it in code.
	Targets *targets.Registry
	// Consumer tunes the instance's consumer: --ack-wait, --max-deliver,
	// --concurrency and --consumer-replicas.
	Consumer consumer.Config
}

// Register adds the settings' flags to fs.
func (s *Settings) Register(fs *flag.FlagSet) {
	if s.TargetsFile == "" {
		s.TargetsFile = "/etc/upshift/targets.yaml"
	}
	fs.StringVar(&s.TargetsFile, "targets", s.TargetsFile, "the targets this instance serves")
	s.Consumer.Register(fs)
	if s.Consumer.Concurrency <= 0 {
		s.Consumer.Concurrency = DefaultConcurrency
	}
	fs.IntVar(&s.Consumer.Concurrency, "concurrency", s.Consumer.Concurrency,
		"commands run at once, each for another target; one target's run one at a time, in order")
	fs.IntVar(&s.Consumer.Replicas, "consumer-replicas", s.Consumer.Replicas,
		"replicas of the instance's consumer on COMMANDS and of its follower of lost messages; 0: as many as the stream (1 spares a cluster the cost of a consumer per host, and loses its state with its node)")
}

// Registry returns the targets to serve.
func (s Settings) Registry() (*targets.Registry, error) {
	if s.Targets != nil {
		return s.Targets, nil
	}
	return targets.Load(s.TargetsFile)
}

// Program is the process of a phase service: the settings' flags and the
// service's own (flags, may be nil), and build, which makes the service for
// the targets it serves. Each service's Program calls it.
func Program(name, opsAddr string, s *Settings, flags func(*flag.FlagSet),
	build func(env service.Env, served *targets.Registry) (service.Component, error)) service.Program {
	return service.Program{Name: name, OpsAddr: opsAddr,
		Flags: func(fs *flag.FlagSet) {
			s.Register(fs)
			if flags != nil {
				flags(fs)
			}
		},
		Build: func(_ context.Context, env service.Env) ([]service.Component, func(), error) {
			served, err := s.Registry()
			if err != nil {
				return nil, nil, err
			}
			// Every line the service logs, its executor's included, is
			// scrubbed of the targets' secrets.
			env.Log = slog.New(ScrubLogs(env.Log.Handler(), served.Scrub))
			c, err := build(env, served)
			if err != nil {
				return nil, nil, err
			}
			return []service.Component{c}, nil, nil
		}}
}
