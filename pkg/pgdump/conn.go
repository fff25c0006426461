package pgdump

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// conn is a parsed DSN: how to connect with pgx, and how the tools do.
type conn struct {
	cfg *pgx.ConnConfig
	dsn string
}

func parse(dsn string) (conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's error may quote the DSN.
		return conn{}, fmt.Errorf("%w: it does not parse as a PostgreSQL URL or key=value string", ErrDSN)
	}
	if cfg.Database == "" {
		return conn{}, fmt.Errorf("%w: it names no database", ErrDSN)
	}
	return conn{cfg: cfg, dsn: dsn}, nil
}

// to is the same connection to another database.
func (c conn) to(database string) conn {
	cfg := c.cfg.Copy()
	cfg.Database = database
	return conn{cfg: cfg, dsn: c.dsn}
}

func (c conn) connect(ctx context.Context) (*pgx.Conn, error) {
	pc, err := pgx.ConnectConfig(ctx, c.cfg)
	if err != nil {
		var ce *pgconn.ConnectError
		if errors.As(err, &ce) && ce.Unwrap() != nil {
			err = ce.Unwrap() // pgconn's prefix names the user and database
		}
		return nil, fmt.Errorf("connect to %s: %s", c.cfg.Database, c.redact(err.Error()))
	}
	return pc, nil
}

// env is the tools' environment: the connection in PG* variables, so no
// password is in an argument list that any user of the host may read.
func (c conn) env(t Tools) []string {
	hosts, ports := []string{c.cfg.Host}, []string{strconv.Itoa(int(c.cfg.Port))}
	mode := "disable"
	if c.cfg.TLSConfig != nil {
		mode = "verify-full"
		if c.cfg.TLSConfig.InsecureSkipVerify {
			mode = "require"
		}
	}
	for _, f := range c.cfg.Fallbacks {
		if f.Host == c.cfg.Host && f.Port == c.cfg.Port {
			if f.TLSConfig == nil && c.cfg.TLSConfig != nil {
				mode = "prefer" // pgx's reading of the default: TLS, then plain
			}
			continue
		}
		hosts, ports = append(hosts, f.Host), append(ports, strconv.Itoa(int(f.Port)))
	}
	env := append(t.base(),
		"PGHOST="+strings.Join(hosts, ","), "PGPORT="+strings.Join(ports, ","),
		"PGUSER="+c.cfg.User, "PGDATABASE="+c.cfg.Database, "PGSSLMODE="+mode,
		"PGAPPNAME=upshift", "PGCONNECT_TIMEOUT=30")
	if c.cfg.Password != "" {
		env = append(env, "PGPASSWORD="+c.cfg.Password)
	}
	return env
}

// redact removes the password and the DSN from s.
func (c conn) redact(s string) string {
	for _, x := range []string{c.dsn, c.cfg.Password} {
		if x != "" {
			s = strings.ReplaceAll(s, x, "*****")
		}
	}
	return s
}
