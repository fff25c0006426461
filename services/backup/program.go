package backup

import (
	"cmp"
	"flag"
	"fmt"

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
	// Storage is where finished backups are kept: StorageObjectStore (the
	// default, also when empty) or StorageDir (each target's backup dir).
	Storage string
	// Bucket of the Object Store; DefaultBucket when empty.
	Bucket string
	// Keep is how many backups per target and software to keep; 0 keeps
	// them all. Default DefaultKeep (set by the flag).
	Keep int
}

// Storages.
const (
	StorageObjectStore = "objectstore"
	StorageDir         = "dir"
)

// DefaultKeep is how many backups per target and software are kept.
const DefaultKeep = 5

// Program is the backup process, built from its settings: its main runs it,
// and `upshift dev` builds its backup service with it.
func Program(s *Settings) service.Program {
	flags := func(fs *flag.FlagSet) {
		fs.StringVar(&s.PGBinDir, "pg-bin-dir", s.PGBinDir, "the directory holding pg_dump and pg_restore, of the databases' major version or later (default: found on PATH)")
		fs.StringVar(&s.Storage, "backup-storage", cmp.Or(s.Storage, StorageObjectStore), "where backups are kept: objectstore (a JetStream Object Store bucket: restorable from another host) or dir (each target's backup directory)")
		fs.StringVar(&s.Bucket, "backup-bucket", cmp.Or(s.Bucket, DefaultBucket), "the Object Store bucket of the backups")
		fs.IntVar(&s.Keep, "backup-keep", cmp.Or(s.Keep, DefaultKeep), "backups to keep per target and software (0: all); those of sagas not over are always kept")
	}
	return phase.Program("backup", ":9103", &s.Settings, flags, func(env service.Env, served *targets.Registry) (service.Component, error) {
		cfg := Config{Instance: env.Instance, Targets: served, Tools: pgdump.Tools{Dir: s.PGBinDir},
			Keep: s.Keep, Consumer: s.Consumer, Streams: env.Streams()}
		switch s.Storage {
		case "", StorageObjectStore:
			cfg.Store = &Store{JS: env.JS, Bucket: s.Bucket, Streams: env.Streams()}
		case StorageDir:
		default:
			return nil, fmt.Errorf("--backup-storage %q: objectstore or dir", s.Storage)
		}
		return New(env.JS, cfg, env.Log, env.Registry), nil
	})
}
