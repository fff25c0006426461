package precheck

import (
	"flag"

	"aead.dev/minisign"

	"github.com/upshift/upshift/pkg/artifact"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/targets"
)

// Settings of an upshift-precheck process: flags, or UPSHIFT_* variables.
// Program registers every flag; the Register promoted from phase.Settings
// alone leaves out the artifact flags.
type Settings struct {
	phase.Settings
	Artifacts artifact.Settings
	// TrustedKeys is a file of minisign public keys that verify packages'
	// signatures (LoadTrustedKeys); empty: none, and a signed request fails.
	TrustedKeys string
}

func (s *Settings) register(fs *flag.FlagSet) {
	s.Artifacts.Register(fs)
	fs.StringVar(&s.TrustedKeys, "trusted-keys", s.TrustedKeys,
		"file of minisign public keys that verify packages' signatures (one per line, as in a .pub file)")
}

// Program is the precheck process, built from its settings: its main runs it,
// and `upshift dev` builds its precheck service with it.
func Program(s *Settings) service.Program {
	return phase.Program("precheck", ":9102", &s.Settings, s.register, func(env service.Env, served *targets.Registry) (service.Component, error) {
		arts, err := s.Artifacts.Open(env.JS)
		if err != nil {
			return nil, err
		}
		var keys []minisign.PublicKey
		if s.TrustedKeys != "" {
			if keys, err = LoadTrustedKeys(s.TrustedKeys); err != nil {
				return nil, err
			}
		}
		return New(env.JS, Config{Instance: env.Instance, Targets: served, Artifacts: arts,
			Limits: s.Artifacts.Limits, TrustedKeys: keys,
			Consumer: s.Consumer, Streams: env.Streams()}, env.Log, env.Registry), nil
	})
}
