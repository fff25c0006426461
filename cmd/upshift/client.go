package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/upshift/upshift/cmd/upshift/internal/view"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// conn are the connection flags every client command has.
type conn struct {
	url, creds, user       string
	password               service.Secret
	tlsCA, tlsCert, tlsKey string
	timeout                time.Duration
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (c *conn) register(fs *flag.FlagSet) {
	service.URLVar(fs, &c.url, "nats", envOr("UPSHIFT_NATS_URL", "nats://127.0.0.1:4222"), "NATS URL ($UPSHIFT_NATS_URL)")
	fs.StringVar(&c.creds, "creds", os.Getenv("UPSHIFT_NATS_CREDS"), "NATS credentials file ($UPSHIFT_NATS_CREDS)")
	fs.StringVar(&c.user, "user", os.Getenv("UPSHIFT_NATS_USER"), "NATS user ($UPSHIFT_NATS_USER)")
	service.SecretVar(fs, &c.password, "password", service.Secret(os.Getenv("UPSHIFT_NATS_PASSWORD")), "NATS password ($UPSHIFT_NATS_PASSWORD)")
	fs.StringVar(&c.tlsCA, "nats-tls-ca", os.Getenv("UPSHIFT_NATS_TLS_CA"), "PEM file of the CA that signed the NATS server's certificate ($UPSHIFT_NATS_TLS_CA)")
	fs.StringVar(&c.tlsCert, "nats-tls-cert", os.Getenv("UPSHIFT_NATS_TLS_CERT"), "PEM file of your client certificate, for servers that verify clients ($UPSHIFT_NATS_TLS_CERT)")
	fs.StringVar(&c.tlsKey, "nats-tls-key", os.Getenv("UPSHIFT_NATS_TLS_KEY"), "PEM file of the client certificate's key ($UPSHIFT_NATS_TLS_KEY)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "how long to wait for an answer")
}

func (c *conn) open() (*nats.Conn, jetstream.JetStream, error) {
	common := service.Common{NATSURL: c.url, NATSCreds: c.creds, NATSUser: c.user, NATSPassword: c.password,
		NATSTLSCA: c.tlsCA, NATSTLSCert: c.tlsCert, NATSTLSKey: c.tlsKey}
	return service.Connect(common, "upshift-cli", slog.New(slog.DiscardHandler))
}

// command builds a client command: flags, then exec with a connection,
// within --timeout.
func command(name, usage, help string, out io.Writer, flags func(*flag.FlagSet),
	exec func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, args []string) error) *ffcli.Command {
	return newCommand(name, usage, help, out, flags, exec, true)
}

// following builds a command that follows something until interrupted:
// --timeout does not end it.
func following(name, usage, help string, out io.Writer, flags func(*flag.FlagSet),
	exec func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, args []string) error) *ffcli.Command {
	return newCommand(name, usage, help, out, flags, exec, false)
}

func newCommand(name, usage, help string, out io.Writer, flags func(*flag.FlagSet),
	exec func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, args []string) error, timed bool) *ffcli.Command {
	var c conn
	fs := flag.NewFlagSet("upshift "+name, flag.ContinueOnError)
	c.register(fs)
	if flags != nil {
		flags(fs)
	}
	return &ffcli.Command{Name: name, ShortUsage: "upshift " + name + " " + usage, ShortHelp: help, FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			// The flag package stops at the first argument; operators type
			// `upshift cancel ID --comment why`, so parse what follows too.
			if len(args) > 1 {
				if err := fs.Parse(args[1:]); err != nil {
					if errors.Is(err, flag.ErrHelp) {
						return err
					}
					return fmt.Errorf("%w: %v (see `%s -h`)", exitInvalid, err, fs.Name())
				}
				args = append(args[:1:1], fs.Args()...)
			}
			nc, js, err := c.open()
			if err != nil {
				return err
			}
			defer nc.Close()
			if timed {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, c.timeout)
				defer cancel()
			}
			return exec(ctx, nc, js, args)
		}}
}

func oneID(args []string) (string, error) {
	if len(args) != 1 {
		return "", fmt.Errorf("%w: give one saga id", exitInvalid)
	}
	return args[0], nil
}

// readRequest reads and checks a request file; problems are printed one per
// line.
func readRequest(path string, out io.Writer) (spec.Request, error) {
	if path == "" {
		return spec.Request{}, fmt.Errorf("%w: -f FILE is required", exitInvalid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return spec.Request{}, err
	}
	r, err := spec.Parse(b)
	var verr *spec.ValidationError
	if errors.As(err, &verr) {
		fmt.Fprintf(out, "%s is not a valid request:\n", path)
		for _, p := range verr.Problems {
			at := path
			if p.Line > 0 {
				at = fmt.Sprintf("%s:%d:%d", path, p.Line, p.Column)
			}
			fmt.Fprintf(out, "  %s: %s\n", at, p)
		}
		return r, exitInvalid
	}
	return r, err
}

func validateCmd(out io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("upshift validate", flag.ContinueOnError)
	file := fs.String("f", "", "request file (YAML or JSON)")
	return &ffcli.Command{Name: "validate", ShortUsage: "upshift validate -f FILE", ShortHelp: "check a request file", FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			r, err := readRequest(*file, out)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s: valid: %s of %d target(s) in %s\n", *file, r.Title(), len(r.Spec.Targets), r.Metadata.Environment)
			return nil
		}}
}

func submitCmd(out io.Writer) *ffcli.Command {
	var file string
	var watch, dryRun, asJSON bool
	c := command("submit", "-f FILE [--watch] [--dry-run [--json]]", "submit an upgrade or maintenance request", out,
		func(fs *flag.FlagSet) {
			fs.StringVar(&file, "f", "", "request file (YAML or JSON)")
			fs.BoolVar(&watch, "watch", false, "follow the saga until it ends; exit 0 only if it succeeded (a dry run: checked)")
			fs.BoolVar(&dryRun, "dry-run", false, "run the precheck alone: nothing is backed up or deployed; the saga ends checked if every check passed")
			fs.BoolVar(&asJSON, "json", false, "with --dry-run: wait for the checks and print their report as JSON")
		},
		func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, args []string) error {
			r, err := readRequest(file, out)
			if err != nil {
				return err
			}
			r.Spec.DryRun = r.Spec.DryRun || dryRun
			client := api.NewClient(nc)
			id, err := client.Submit(ctx, r)
			if err != nil {
				return err
			}
			if asJSON {
				return checkReport(context.WithoutCancel(ctx), client, js, id, out)
			}
			fmt.Fprintf(out, "submitted %s: %s\n", id, r.Title())
			if !watch {
				fmt.Fprintf(out, "follow it with: upshift watch %s\n", id)
				return nil
			}
			return follow(context.WithoutCancel(ctx), js, id, out)
		})
	connect := c.Exec
	c.Exec = func(ctx context.Context, args []string) error {
		if asJSON && !dryRun {
			return fmt.Errorf("%w: --json goes with --dry-run", exitInvalid)
		}
		return connect(ctx, args)
	}
	return c
}

// follow prints a saga's events until it ends; the exit code says how.
func follow(ctx context.Context, js jetstream.JetStream, id string, out io.Writer) error {
	p := view.NewPrinter(out)
	end, err := view.Watch(ctx, js, id, p.Print)
	if err != nil {
		return fmt.Errorf("could not follow the saga to its end: %w (%w)", err, exitUnfollowed)
	}
	return outcome(end)
}

// outcome is the exit code of a saga that ended with end: 0 only if it
// did what it was asked, a dry run included.
func outcome(end events.SagaEvent) error {
	switch saga.State(end.Kind) {
	case saga.StateSucceeded, saga.StateChecked:
		return nil
	}
	return exitFailed
}

// CheckReport is what `submit --dry-run --json` prints: how the saga
// ended and each target's precheck report.
type CheckReport struct {
	Saga    string                         `json:"saga"`
	State   string                         `json:"state"`
	Reason  string                         `json:"reason,omitempty"`
	Targets map[string][]events.ReportLine `json:"targets"`
}

// checkReport waits for a dry run to end and prints its report as JSON.
func checkReport(ctx context.Context, client *api.Client, js jetstream.JetStream, id string, out io.Writer) error {
	end, err := view.Watch(ctx, js, id, nil)
	if err != nil {
		return fmt.Errorf("could not follow the saga to its end: %w (%w)", err, exitUnfollowed)
	}
	rep := CheckReport{Saga: id, State: end.Kind, Reason: end.Reason, Targets: map[string][]events.ReportLine{}}
	if end.Kind != events.KindInvalid {
		gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		v, err := client.Get(gctx, id)
		cancel()
		if err != nil {
			return err
		}
		// The last attempt of each target's precheck is its report.
		for _, st := range v.Saga.Steps {
			if st.Phase == events.Precheck {
				rep.Targets[st.Target] = st.Report
			}
		}
	}
	if err := printJSON(out, rep); err != nil {
		return err
	}
	return outcome(end)
}

func noticesCmd(out io.Writer) *ffcli.Command {
	var team string
	var since time.Duration
	var o output
	return following("notices", "--team TEAM [--since DURATION] [--output table|json|yaml]",
		"follow a team's notices until interrupted: from --since ago, else only new ones", out,
		func(fs *flag.FlagSet) {
			fs.StringVar(&team, "team", "", "the team whose notices to follow (required)")
			fs.DurationVar(&since, "since", 0, "start that long ago (e.g. 24h); 0: only notices from now on")
			o.register(fs, outTable)
		},
		func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, args []string) error {
			if team == "" || len(args) > 0 {
				return fmt.Errorf("%w: give --team TEAM and no arguments", exitInvalid)
			}
			enc := json.NewEncoder(out)
			return view.Notices(ctx, js, team, since, func(n events.Notice) {
				// JSON: one line per notice; YAML: one document each.
				v := struct {
					ID   string    `json:"id"`
					Time time.Time `json:"time"`
					events.Notice
				}{n.ID, n.Time, n}
				switch o.format {
				case outJSON:
					_ = enc.Encode(v)
				case outYAML:
					fmt.Fprintln(out, "---")
					_ = printYAML(out, v)
				default:
					view.NoticeLine(out, n)
				}
			})
		})
}

func statusCmd(out io.Writer) *ffcli.Command {
	var o output
	return command("status", "ID [--output table|json|yaml]", "show a saga: state, reason, steps", out,
		func(fs *flag.FlagSet) { o.register(fs, outTable) },
		func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, args []string) error {
			id, err := oneID(args)
			if err != nil {
				return err
			}
			v, err := api.NewClient(nc).Get(ctx, id)
			if err != nil {
				return err
			}
			return o.print(out, v, func() error { view.Status(out, v.Saga); return nil })
		})
}

func listCmd(out io.Writer) *ffcli.Command {
	var f sagastore.Filter
	var states string
	var since sinceFlag
	var o output
	return command("list", "[flags]", "list sagas, newest first", out,
		func(fs *flag.FlagSet) {
			fs.StringVar(&f.Team, "team", "", "only this team's")
			fs.StringVar(&f.Environment, "env", "", "only this environment's")
			fs.StringVar(&f.Software, "software", "", "only this software's")
			fs.StringVar(&states, "state", "", "only these states, comma separated")
			fs.BoolVar(&f.Active, "active", false, "only sagas still running")
			fs.Var(&since, "since", "only sagas created since: a duration ago (24h) or a time (RFC 3339, 2026-03-01T00:00:00Z)")
			fs.IntVar(&f.Limit, "limit", 50, "at most this many")
			o.register(fs, outTable)
		},
		func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, args []string) error {
			for _, s := range strings.Split(states, ",") {
				if s = strings.TrimSpace(s); s != "" {
					f.States = append(f.States, saga.State(s))
				}
			}
			f.Since = since.at(time.Now())
			reply, err := api.NewClient(nc).List(ctx, f)
			if err != nil {
				return err
			}
			// The coordinator filters; a coordinator older than --since
			// ignores it, so the answer is filtered here again.
			reply.Sagas = slices.DeleteFunc(reply.Sagas, func(s sagastore.Summary) bool { return !f.Match(s) })
			if len(reply.Unreadable) > 0 {
				fmt.Fprintf(os.Stderr, "upshift: warning: not listed, as they cannot be decoded: %s\n",
					strings.Join(reply.Unreadable, ", "))
			}
			return o.print(out, reply.Sagas, func() error { view.List(out, reply.Sagas); return nil })
		})
}

func historyCmd(out io.Writer) *ffcli.Command {
	var o output
	return command("history", "ID [--output table|json|yaml]", "show a saga's audit log: every event the coordinator saw or emitted", out,
		func(fs *flag.FlagSet) { o.register(fs, outTable) },
		func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, args []string) error {
			id, err := oneID(args)
			if err != nil {
				return err
			}
			h, err := api.NewClient(nc).History(ctx, id)
			if err != nil {
				return err
			}
			return o.print(out, h, func() error { view.History(out, h); return nil })
		})
}

func decideCmd(out io.Writer, op, help string) *ffcli.Command {
	var by, comment string
	me := "unknown"
	if u, err := user.Current(); err == nil {
		me = u.Username
	}
	return command(op, "ID [--by NAME] [--comment TEXT]", help, out,
		func(fs *flag.FlagSet) {
			fs.StringVar(&by, "by", me, "who decides (recorded in the audit log)")
			fs.StringVar(&comment, "comment", "", "why (recorded in the audit log, told to the teams)")
		},
		func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, args []string) error {
			id, err := oneID(args)
			if err != nil {
				return err
			}
			reply, err := api.NewClient(nc).Decide(ctx, api.ControlRequest{
				ID: id, Op: events.ControlOp(op), Actor: by, Comment: comment})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s of %s accepted (it was %s); follow it with: upshift watch %s\n", op, id, reply.State, id)
			return nil
		})
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// sinceFlag is --since: a duration before now, or a time.
type sinceFlag struct {
	ago time.Duration
	t   time.Time
}

func (s *sinceFlag) String() string {
	if !s.t.IsZero() {
		return s.t.Format(time.RFC3339)
	}
	if s.ago != 0 {
		return s.ago.String()
	}
	return ""
}

func (s *sinceFlag) Set(v string) error {
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		s.ago, s.t = d, time.Time{}
		return nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		s.ago, s.t = 0, t
		return nil
	}
	return fmt.Errorf("%q is neither a positive duration (24h, 90m) nor an RFC 3339 time (2026-03-01T00:00:00Z)", v)
}

// at is the time --since means at now; zero if not given.
func (s *sinceFlag) at(now time.Time) time.Time {
	if s.ago != 0 {
		return now.Add(-s.ago)
	}
	return s.t
}

// confirmCmd confirms, for one role, that its people are on hand.
func confirmCmd(out io.Writer) *ffcli.Command {
	var by, role, comment string
	me := ""
	if u, err := user.Current(); err == nil {
		me = u.Username
	}
	return command("confirm", "ID --role ROLE [--by NAME] [--comment TEXT]",
		"confirm for a role (dev, qa, ops, dba...) that its people are on hand; the saga waits for every role it asks", out,
		func(fs *flag.FlagSet) {
			fs.StringVar(&role, "role", "", "the role confirmed, one the saga asks for (required; see upshift status ID)")
			fs.StringVar(&by, "by", me, "who confirms (recorded in the audit log, told to the teams)")
			fs.StringVar(&comment, "comment", "", "a remark (recorded in the audit log, told to the teams)")
		},
		func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, args []string) error {
			id, err := oneID(args)
			if err != nil {
				return err
			}
			var missing []string
			if role == "" {
				missing = append(missing, "--role is required")
			}
			if strings.TrimSpace(by) == "" {
				missing = append(missing, "--by is required")
			}
			if len(missing) > 0 {
				return fmt.Errorf("%w: %s", exitInvalid, strings.Join(missing, "; "))
			}
			reply, err := api.NewClient(nc).Decide(ctx, api.ControlRequest{
				ID: id, Op: events.OpConfirm, Actor: by, Comment: comment, Role: role})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "confirmation of %s for %s accepted (it was %s); follow it with: upshift watch %s\n", role, id, reply.State, id)
			return nil
		})
}
