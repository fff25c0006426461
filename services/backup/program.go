package backup

import (
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/targets"
)

// Settings of an upshift-backup process: flags, or UPSHIFT_* variables.
type Settings struct {
	phase.Settings
}

// Program is the backup process, built from its settings: its main runs it,
// and `upshift dev` builds its backup service with it.
func Program(s *Settings) service.Program {
	return phase.Program("backup", ":9103", &s.Settings, nil, func(env service.Env, served *targets.Registry) (service.Component, error) {
		return New(env.JS, Config{Instance: env.Instance, Targets: served,
			Consumer: s.Consumer, Streams: env.Streams()}, env.Log, env.Registry), nil
	})
}
