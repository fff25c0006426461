package deploy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/targets"
)

// database is an open connection to one of the target's databases, and how
// to keep its DSN out of what is said about it.
type database struct {
	name   string
	conn   *pgx.Conn
	secret []string
}

// connect opens db; no error it returns holds the DSN or the password.
func connect(ctx context.Context, db targets.Database) (*database, error) {
	dsn, err := db.DSN()
	if err != nil {
		return nil, fmt.Errorf("database %s: %w: %w", db.Name, errUnconfigured, err)
	}
	cfg, err := pgx.ParseConfig(string(dsn))
	if err != nil {
		return nil, fmt.Errorf("database %s: its DSN does not parse as a PostgreSQL URL or key=value string", db.Name)
	}
	d := &database{name: db.Name, secret: []string{string(dsn), cfg.Password}}
	if d.conn, err = pgx.ConnectConfig(ctx, cfg); err != nil {
		var ce *pgconn.ConnectError
		if errors.As(err, &ce) && ce.Unwrap() != nil {
			err = ce.Unwrap() // pgconn's prefix names the user and database
		}
		return nil, d.wrap("connect", err)
	}
	return d, nil
}

func (d *database) close() { d.conn.Close(context.Background()) }

// wrap names the database and the operation, with the secrets taken out.
func (d *database) wrap(op string, err error) error {
	msg := err.Error()
	for _, x := range d.secret {
		if x != "" {
			msg = strings.ReplaceAll(msg, x, "*****")
		}
	}
	return fmt.Errorf("database %s: %s: %s", d.name, op, msg)
}

// maintainedDatabases are the databases reindex, analyze and vacuum work on:
// the one the maintenance settings name, or every one the target declares.
func (s *step) maintainedDatabases() ([]targets.Database, error) {
	if n := s.t.Maintenance.Database; n != "" {
		db, _ := s.t.Database(n) // the registry checked it exists
		return []targets.Database{db}, nil
	}
	if len(s.t.Databases) == 0 {
		return nil, fmt.Errorf("%w: the target declares no database", errUnconfigured)
	}
	return s.t.Databases, nil
}

// table is a user table and how many indexes it has.
type table struct {
	name    string // quoted, schema-qualified
	indexes int
}

const userTables = `SELECT c.oid::regclass::text, (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
ORDER BY 1`

// sizes is the space the user tables take: indexes, and all (with TOAST).
const sizes = `SELECT coalesce(sum(pg_indexes_size(c.oid)), 0)::bigint, coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'`

// databaseWork runs REINDEX, ANALYZE or VACUUM (ANALYZE) on every user
// table of each maintained database, one table at a time (so each lock is
// held for one table only), and reports the tables and indexes touched,
// the time taken and the size before and after.
func (s *step) databaseWork(ctx context.Context, action string, out map[string]string) error {
	dbs, err := s.maintainedDatabases()
	if err != nil {
		return err
	}
	var summary []string
	for _, db := range dbs {
		line, err := s.databaseWorkOn(ctx, action, db)
		if err != nil {
			return err
		}
		summary = append(summary, db.Name+": "+line)
	}
	out[action] = strings.Join(summary, "; ")
	return nil
}

func (s *step) databaseWorkOn(ctx context.Context, action string, db targets.Database) (string, error) {
	d, err := connect(ctx, db)
	if err != nil {
		return "", err
	}
	defer d.close()
	rows, err := d.conn.Query(ctx, userTables)
	if err != nil {
		return "", d.wrap("list tables", err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var t table
		return t, r.Scan(&t.name, &t.indexes)
	})
	if err != nil {
		return "", d.wrap("list tables", err)
	}
	var idxBefore, allBefore, idxAfter, allAfter int64
	if err := d.conn.QueryRow(ctx, sizes).Scan(&idxBefore, &allBefore); err != nil {
		return "", d.wrap("measure", err)
	}
	verb := map[string]string{spec.ActionReindex: "REINDEX TABLE ", spec.ActionAnalyze: "ANALYZE ",
		spec.ActionVacuum: "VACUUM (ANALYZE) "}[action]
	start := time.Now()
	indexes := 0
	for _, t := range tables {
		s.stage(fmt.Sprintf("%s %s of database %s", action, t.name, db.Name))
		// The name comes from regclass's output, quoted as SQL needs it.
		if _, err := d.conn.Exec(ctx, verb+t.name); err != nil {
			return "", d.wrap(strings.ToLower(strings.TrimSpace(verb))+" "+t.name, err)
		}
		indexes += t.indexes
	}
	took := time.Since(start).Round(time.Millisecond)
	if err := d.conn.QueryRow(ctx, sizes).Scan(&idxAfter, &allAfter); err != nil {
		return "", d.wrap("measure", err)
	}
	var detail string
	switch action {
	case spec.ActionReindex:
		detail = fmt.Sprintf("%d tables, %d indexes rebuilt in %s; indexes %s -> %s",
			len(tables), indexes, took, targets.Bytes(idxBefore), targets.Bytes(idxAfter))
	case spec.ActionAnalyze:
		detail = fmt.Sprintf("%d tables analyzed in %s", len(tables), took)
	default:
		detail = fmt.Sprintf("%d tables vacuumed and analyzed in %s; tables and indexes %s -> %s",
			len(tables), took, targets.Bytes(allBefore), targets.Bytes(allAfter))
	}
	s.add(action+" "+db.Name, true, detail)
	return detail, nil
}

// purge runs the purge rules the request names (all of the target's if it
// names none), each in a transaction of its own, and reports the rows each
// removed. The statements are the target's configuration: a request only
// names them.
func (s *step) purge(ctx context.Context, out map[string]string) error {
	rules, err := s.t.Maintenance.PurgeRules(s.cmd.Upgrade.Purge)
	if err != nil {
		return fmt.Errorf("%w: %w", errUnconfigured, err)
	}
	if len(rules) == 0 {
		return fmt.Errorf("%w: the target declares no purge rule (maintenance.purge)", errUnconfigured)
	}
	var total int64
	for _, r := range rules {
		db, _ := s.t.Database(r.Database) // the registry checked it exists
		n, took, err := s.purgeOne(ctx, db, r)
		if err != nil {
			return err
		}
		total += n
		s.add("purge "+r.Name, true, fmt.Sprintf("%d rows removed from database %s in %s", n, r.Database, took.Round(time.Millisecond)))
	}
	out["purged_rows"] = strconv.FormatInt(total, 10)
	return nil
}

func (s *step) purgeOne(ctx context.Context, db targets.Database, r targets.PurgeRule) (int64, time.Duration, error) {
	d, err := connect(ctx, db)
	if err != nil {
		return 0, 0, err
	}
	defer d.close()
	s.stage("purge " + r.Name + " in database " + db.Name)
	start := time.Now()
	var n int64
	err = pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, r.SQL)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, 0, d.wrap("purge "+r.Name, err)
	}
	return n, time.Since(start), nil
}
