package deploy

import (
	"github.com/upshift/upshift/pkg/artifact"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/targets"
)

// Settings of an upshift-deploy process: flags, or UPSHIFT_* variables.
// Program registers every flag; the Register promoted from phase.Settings
// alone leaves out the artifact flags.
type Settings struct {
	phase.Settings
	Artifacts artifact.Settings
}

// Program is the deploy process, built from its settings: its main runs it,
// and `upshift dev` builds its deploy service with it.
func Program(s *Settings) service.Program {
	return phase.Program("deploy", ":9104", &s.Settings, s.Artifacts.Register, func(env service.Env, served *targets.Registry) (service.Component, error) {
		arts, err := s.Artifacts.Open(env.JS)
		if err != nil {
			return nil, err
		}
		return New(env.JS, Config{Instance: env.Instance, Targets: served, Artifacts: arts, Limits: s.Artifacts.Limits,
			Consumer: s.Consumer, Streams: env.Streams()}, env.Log, env.Registry), nil
	})
}
