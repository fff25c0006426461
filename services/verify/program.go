package verify

import (
	"net/http"

	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/targets"
)

// Settings of an upshift-verify process: flags, or UPSHIFT_* variables.
type Settings struct {
	phase.Settings
}

// Program is the verify process, built from its settings: its main runs it,
// and `upshift dev` builds its verify service with it.
func Program(s *Settings) service.Program {
	return phase.Program("verify", ":9105", &s.Settings, nil, func(env service.Env, served *targets.Registry) (service.Component, error) {
		// No client-wide time-out: the executor bounds each probe itself.
		return New(env.JS, Config{Instance: env.Instance, Targets: served, Client: &http.Client{},
			Consumer: s.Consumer, Streams: env.Streams()}, env.Log, env.Registry), nil
	})
}
