package precheck

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shirou/gopsutil/v4/host"

	"github.com/upshift/upshift/pkg/checks"
	"github.com/upshift/upshift/pkg/hooks"
	"github.com/upshift/upshift/pkg/targets"
)

// software are the checks of what runs on and around the host: the OS, the
// databases' servers, the middleware.
func software(t targets.Target) []Check {
	p := t.Precheck
	var checks []Check
	if o := p.OS; o != nil {
		var want []string
		if len(o.Names) > 0 {
			want = append(want, strings.Join(o.Names, "|"))
		}
		if o.Version != "" {
			want = append(want, "version "+o.Version)
		}
		if o.Kernel != "" {
			want = append(want, "kernel "+o.Kernel)
		}
		checks = append(checks, Check{Name: "os", Threshold: strings.Join(want, ", "), Timeout: o.Timeout.Duration,
			Run: func(ctx context.Context) Result { return osCheck(ctx, *o) }})
	}
	for _, d := range p.Databases {
		db, _ := t.Database(d.Name) // the registry checked that it is declared
		checks = append(checks, Check{Name: "database " + d.Name, Threshold: d.Version, Timeout: d.Timeout.Duration,
			Run: func(ctx context.Context) Result { return database(ctx, db, d.Version) }})
	}
	for _, m := range p.Middleware {
		checks = append(checks, Check{Name: "middleware " + m.Name, Threshold: m.Version, Timeout: m.Timeout.Duration,
			Run: func(ctx context.Context) Result { return middleware(ctx, t, m) }})
	}
	return checks
}

func osCheck(ctx context.Context, o targets.OSCheck) Result {
	h, err := host.InfoWithContext(ctx)
	if err != nil {
		return Result{Err: fmt.Errorf("read the host's OS: %w", err)}
	}
	r := Result{Value: strings.TrimSpace(fmt.Sprintf("%s %s (%s), kernel %s", h.Platform, h.PlatformVersion, h.OS, h.KernelVersion))}
	have := []string{strings.ToLower(h.Platform), strings.ToLower(h.PlatformFamily), strings.ToLower(h.OS)}
	var problems []string
	if len(o.Names) > 0 && !slices.ContainsFunc(o.Names, func(n string) bool { return n != "" && slices.Contains(have, strings.ToLower(n)) }) {
		problems = append(problems, fmt.Sprintf("%s is none of %s", r.Value, strings.Join(o.Names, ", ")))
	}
	if o.Version != "" {
		if _, err := satisfies(h.PlatformVersion, o.Version); err != nil {
			problems = append(problems, "platform "+err.Error())
		}
	}
	if o.Kernel != "" {
		if _, err := satisfies(h.KernelVersion, o.Kernel); err != nil {
			problems = append(problems, "kernel "+err.Error())
		}
	}
	if len(problems) > 0 {
		r.Err = errors.New(strings.Join(problems, "; "))
	}
	return r
}

// database reads a PostgreSQL server's version. Its DSN stays here: an
// error that could quote it (a DSN that does not parse) is replaced by a
// sentence of ours, and the connection's errors lose the password and the
// DSN should they carry them.
func database(ctx context.Context, d targets.Database, version string) Result {
	dsn, err := d.DSN()
	if err != nil {
		return Result{Err: err}
	}
	cfg, err := pgx.ParseConfig(string(dsn))
	if err != nil {
		return Result{Err: errors.New("its DSN does not parse as a PostgreSQL URL or key=value string")}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return Result{Err: errors.New(redact(connectReason(err), string(dsn), cfg.Password))}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	server := conn.PgConn().ParameterStatus("server_version")
	if server == "" {
		if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&server); err != nil {
			return Result{Err: errors.New(redact("read the server's version: "+err.Error(), string(dsn), cfg.Password))}
		}
	}
	found, err := satisfies(server, version)
	r := Result{Value: "PostgreSQL " + found, Err: err}
	if found == "" {
		r.Value = ""
	}
	return r
}

// connectReason is why a connection failed, without pgconn's prefix that
// names the user and the database.
func connectReason(err error) string {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		err = ce.Unwrap()
	}
	return "connect: " + err.Error()
}

func redact(s string, secrets ...string) string {
	for _, x := range secrets {
		if x != "" {
			s = strings.ReplaceAll(s, x, "*****")
		}
	}
	return s
}

// middleware reads a version from a command's output or an HTTP answer.
func middleware(ctx context.Context, t targets.Target, m targets.MiddlewareCheck) Result {
	var out string
	if len(m.Command) > 0 {
		// The check's context bounds the command; hooks.Run wants its own
		// time-out too, to kill the command's whole process group.
		timeout := checks.DefaultTimeout
		if deadline, ok := ctx.Deadline(); ok {
			timeout = max(time.Until(deadline), time.Millisecond)
		}
		res, err := hooks.Run(ctx, m.Command, t.Root, t.HookEnv(nil), timeout)
		if err != nil {
			return Result{Err: fmt.Errorf("read the version: %w", err)}
		}
		out = res.Output
	} else {
		status, body, err := get(ctx, m.URL, maxBody)
		if err != nil {
			return Result{Err: fmt.Errorf("read the version: %w", err)}
		}
		if status < 200 || status > 299 {
			return Result{Err: fmt.Errorf("read the version: HTTP %d", status)}
		}
		out = string(body)
		if m.JSONField != "" {
			if out, err = checks.JSONField(body, m.JSONField); err != nil {
				return Result{Err: fmt.Errorf("read the version: %w", err)}
			}
		}
	}
	if m.Pattern != "" {
		re, err := regexp.Compile(m.Pattern)
		if err != nil {
			return Result{Err: fmt.Errorf("pattern: %w", err)}
		}
		sub := re.FindStringSubmatch(out)
		if sub == nil {
			return Result{Err: fmt.Errorf("pattern %s finds nothing in %q", m.Pattern, clipText(out, 80))}
		}
		out = sub[min(1, len(sub)-1)]
	}
	found, err := satisfies(out, m.Version)
	return Result{Value: found, Err: err}
}
