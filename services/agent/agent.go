// Package agent is upshift-agent: the four phase services of one host,
// precheck, backup, deploy and verify, in one process. Each is built by its
// own service's Program, as its own binary builds it, and keeps its own
// consumers, its own metrics (labelled by service, on the one /metrics) and
// its own NATS identity: the agent opens one connection per phase, as the
// host's user of that phase, so a phase can do no more than its binary
// could. The separate binaries stay, for a host that wants them apart.
package agent

import (
	"context"
	"flag"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/services/backup"
	"github.com/upshift/upshift/services/deploy"
	"github.com/upshift/upshift/services/precheck"
	"github.com/upshift/upshift/services/verify"
)

// OpsAddr is the agent's default address of /metrics, /healthz and /readyz,
// the port deploy/prometheus scrapes.
const OpsAddr = ":9100"

// Settings of an upshift-agent process: flags, or UPSHIFT_* variables.
// Flags the phases share (--targets, --ack-wait, --max-deliver, the
// --artifact-* ones) are given once and set in every phase that has them.
type Settings struct {
	Precheck precheck.Settings
	Backup   backup.Settings
	Deploy   deploy.Settings
	Verify   verify.Settings
	// UserPrefix, when set, names each phase's NATS user: <prefix>-<phase>,
	// e.g. demo-host-precheck, as deploy/nats/upshift.conf names them.
	// Empty: every phase connects as --nats-user (or --nats-creds).
	UserPrefix string
	// Passwords and Creds of each phase's user, by phase name; used with
	// UserPrefix.
	Passwords map[string]*service.Secret
	Creds     map[string]*string
}

// Phases are the services an agent runs, in the order it builds them.
var Phases = []string{"precheck", "backup", "deploy", "verify"}

func (s *Settings) programs() []service.Program {
	return []service.Program{precheck.Program(&s.Precheck), backup.Program(&s.Backup),
		deploy.Program(&s.Deploy), verify.Program(&s.Verify)}
}

func (s *Settings) register(fs *flag.FlagSet, programs []service.Program) {
	fs.StringVar(&s.UserPrefix, "nats-user-prefix", s.UserPrefix,
		"each phase connects as the NATS user <prefix>-<phase> (e.g. demo-host: demo-host-precheck, ..., demo-host-verify); empty: every phase as --nats-user")
	s.Passwords, s.Creds = map[string]*service.Secret{}, map[string]*string{}
	for _, ph := range Phases {
		s.Passwords[ph], s.Creds[ph] = new(service.Secret), new(string)
		service.SecretVar(fs, s.Passwords[ph], ph+"-nats-password", "", "password of the "+ph+" user (with --nats-user-prefix)")
		fs.StringVar(s.Creds[ph], ph+"-nats-creds", "", "credentials file of the "+ph+" user (with --nats-user-prefix)")
	}
	fanOut(fs, programs)
}

// common returns the connection settings of phase ph.
func (s *Settings) common(c service.Common, ph string) service.Common {
	if s.UserPrefix == "" {
		return c
	}
	c.NATSUser, c.NATSPassword, c.NATSCreds = s.UserPrefix+"-"+ph, *s.Passwords[ph], *s.Creds[ph]
	return c
}

// Program is the agent process, built from its settings.
func Program(s *Settings) service.Program {
	programs := s.programs()
	return service.Program{Name: "agent", OpsAddr: OpsAddr, Connects: true,
		Flags: func(fs *flag.FlagSet) { s.register(fs, programs) },
		Build: func(ctx context.Context, env service.Env) ([]service.Component, func(), error) {
			var (
				parts    []service.Component
				cleanups []func()
			)
			cleanup := func() {
				for i := len(cleanups) - 1; i >= 0; i-- {
					cleanups[i]()
				}
			}
			for _, p := range programs {
				penv := env
				penv.Instance = env.Instance + "/" + p.Name
				// The phase's own lines say its service; the connection's
				// are the agent's, and say which.
				nc, js, err := env.Connect(ctx, s.common(env.Common, p.Name), penv.Instance, env.Log.With("service", p.Name))
				if err != nil {
					cleanup()
					return nil, nil, fmt.Errorf("%s: %w", p.Name, err)
				}
				cleanups = append(cleanups, nc.Close)
				penv.NC, penv.JS = nc, js
				built, done, err := p.Build(ctx, penv)
				if err != nil {
					cleanup()
					return nil, nil, fmt.Errorf("%s: %w", p.Name, err)
				}
				if done != nil {
					cleanups = append(cleanups, done)
				}
				parts = append(parts, conn{p.Name, nc})
				parts = append(parts, built...)
			}
			return parts, cleanup, nil
		}}
}

// conn is the ready check of one phase's connection: a part that has
// nothing to run.
type conn struct {
	phase string
	nc    *nats.Conn
}

func (c conn) Run(ctx context.Context) error { <-ctx.Done(); return nil }

func (c conn) Check() error {
	if err := service.Connected(c.nc)(); err != nil {
		return fmt.Errorf("%s: %w", c.phase, err)
	}
	return nil
}
