package verify

import (
	"context"
	"net/http"

	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/service"
)

// Settings of an upshift-verify process: flags, or UPSHIFT_* variables.
type Settings struct {
	phase.Settings
}

// Program is the verify process, built from its settings: its main runs it,
// and `upshift dev` and the tests build their verify service with it.
func Program(s *Settings) service.Program {
	return service.Program{Name: "verify", OpsAddr: ":9105", Flags: s.Register,
		Build: func(_ context.Context, env service.Env) ([]service.Component, func(), error) {
			reg, err := s.Registry()
			if err != nil {
				return nil, nil, err
			}
			// No client-wide time-out: the executor bounds each probe itself.
			return []service.Component{New(env.JS, Config{Instance: env.Instance, Targets: reg, Client: &http.Client{},
				Consumer: s.Consumer, Streams: env.Streams()}, env.Log, env.Registry)}, nil, nil
		}}
}
