package backup

import (
	"context"

	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/service"
)

// Settings of an upshift-backup process: flags, or UPSHIFT_* variables.
type Settings struct {
	phase.Settings
}

// Program is the backup process, built from its settings: its main runs it,
// and `upshift dev` and the tests build their backup service with it.
func Program(s *Settings) service.Program {
	return service.Program{Name: "backup", OpsAddr: ":9103", Flags: s.Register,
		Build: func(_ context.Context, env service.Env) ([]service.Component, func(), error) {
			reg, err := s.Registry()
			if err != nil {
				return nil, nil, err
			}
			return []service.Component{New(env.JS, Config{Instance: env.Instance, Targets: reg,
				Consumer: s.Consumer, Streams: env.Streams()}, env.Log, env.Registry)}, nil, nil
		}}
}
