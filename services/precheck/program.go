package precheck

import (
	"context"
	"flag"

	"github.com/upshift/upshift/pkg/artifact"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/service"
)

// Settings of an upshift-precheck process: flags, or UPSHIFT_* variables.
type Settings struct {
	phase.Settings
	Artifacts artifact.Settings
}

// Register adds the process's own flags to fs.
func (s *Settings) Register(fs *flag.FlagSet) {
	s.Settings.Register(fs)
	s.Artifacts.Register(fs)
}

// Program is the precheck process, built from its settings: its main runs it,
// and `upshift dev` and the tests build their precheck service with it.
func Program(s *Settings) service.Program {
	return service.Program{Name: "precheck", OpsAddr: ":9102", Flags: s.Register,
		Build: func(_ context.Context, env service.Env) ([]service.Component, func(), error) {
			reg, err := s.Registry()
			if err != nil {
				return nil, nil, err
			}
			arts, err := s.Artifacts.Open()
			if err != nil {
				return nil, nil, err
			}
			return []service.Component{New(env.JS, Config{Instance: env.Instance, Targets: reg, Artifacts: arts,
				Consumer: s.Consumer, Streams: env.Streams()}, env.Log, env.Registry)}, nil, nil
		}}
}
