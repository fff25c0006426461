package backup

import (
	"flag"

	"github.com/upshift/upshift/pkg/pgdump"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/targets"
)

// Settings of an upshift-backup process: flags, or UPSHIFT_* variables.
type Settings struct {
	phase.Settings
	// PGBinDir holds pg_dump and pg_restore; empty: found on PATH.
	PGBinDir string
}

// Program is the backup process, built from its settings: its main runs it,
// and `upshift dev` builds its backup service with it.
func Program(s *Settings) service.Program {
	flags := func(fs *flag.FlagSet) {
		fs.StringVar(&s.PGBinDir, "pg-bin-dir", s.PGBinDir, "the directory holding pg_dump and pg_restore, of the databases' major version or later (default: found on PATH)")
	}
	return phase.Program("backup", ":9103", &s.Settings, flags, func(env service.Env, served *targets.Registry) (service.Component, error) {
		return New(env.JS, Config{Instance: env.Instance, Targets: served, Tools: pgdump.Tools{Dir: s.PGBinDir},
			Consumer: s.Consumer, Streams: env.Streams()}, env.Log, env.Registry), nil
	})
}
