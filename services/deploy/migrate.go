package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrate applies the SQL migrations the release ships (goose's layout:
// <release>/<dir>/NNNN_name.sql with -- +goose Up / Down) to the database
// the target names for them, with the goose library, and reports the schema
// version before and after. A release without the directory has nothing to
// apply. A failed migration is the step's failure (ReasonMigrateFailed):
// goose has rolled back the one that failed, the ones before it stay, and
// the saga's roll-back restores the database from its backup.
func (s *step) migrate(ctx context.Context, release string, out map[string]string) error {
	db, dir, ok := s.t.MigrationsTarget()
	src := filepath.Join(release, filepath.FromSlash(dir))
	if !isDir(src) {
		if len(s.t.Databases) > 0 { // else nothing to say: the target has no database
			s.add("migrations", true, "the release ships no migrations ("+dir+"/)")
		}
		return nil
	}
	fail := func(err error) error {
		s.add("migrations", false, err.Error())
		return failed(ReasonMigrateFailed, err)
	}
	if !ok {
		return fail(fmt.Errorf("the release ships migrations in %s/ but the target names no database for them (databases:, migrations.database)", dir))
	}
	dsn, err := db.DSN()
	if err != nil {
		return fail(fmt.Errorf("database %s: %w", db.Name, err))
	}
	cfg, err := pgx.ParseConfig(string(dsn))
	if err != nil {
		return fail(fmt.Errorf("database %s: its DSN does not parse as a PostgreSQL URL or key=value string", db.Name))
	}
	redact := func(err error) error {
		msg := err.Error()
		for _, x := range []string{string(dsn), cfg.Password} {
			if x != "" {
				msg = strings.ReplaceAll(msg, x, "*****")
			}
		}
		return fmt.Errorf("database %s: %s", db.Name, msg)
	}
	s.stage("applying the migrations in " + src + " to database " + db.Name)
	start := time.Now()
	conn := stdlib.OpenDB(*cfg)
	defer conn.Close()
	// Two deploys of one database (two targets sharing it) take turns.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return fail(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, conn, os.DirFS(src),
		goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true))
	if errors.Is(err, goose.ErrNoMigrations) {
		s.add("migrations", true, "the release's "+dir+"/ holds no migrations")
		return nil
	}
	if err != nil {
		return fail(fmt.Errorf("database %s: the migrations in %s: %w", db.Name, dir, err))
	}
	before, err := version(ctx, p)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fail(redact(fmt.Errorf("read the schema version: %w", err)))
	}
	out["schema_before"] = strconv.FormatInt(before, 10)
	results, uerr := p.Up(ctx)
	if uerr != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	after, err := version(ctx, p)
	if err != nil {
		after = -1
	}
	out["schema_after"] = strconv.FormatInt(after, 10)
	var applied []string
	for _, r := range results {
		if r.Error == nil && !r.Empty {
			applied = append(applied, filepath.Base(r.Source.Path))
		}
	}
	detail := fmt.Sprintf("database %s: schema version %d -> %d in %s; applied %d: %s", db.Name, before, after,
		time.Since(start).Round(time.Millisecond), len(applied), strings.Join(applied, ", "))
	if uerr != nil {
		return fail(redact(fmt.Errorf("schema version %d -> %d: %w", before, after, uerr)))
	}
	s.add("migrations", true, detail)
	return nil
}

// version is the database's schema version; 0 before goose's first run.
func version(ctx context.Context, p *goose.Provider) (int64, error) {
	v, err := p.GetDBVersion(ctx)
	if errors.Is(err, goose.ErrVersionNotFound) {
		return 0, nil
	}
	return v, err
}
