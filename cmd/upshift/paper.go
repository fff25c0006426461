package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/upshift/upshift/cmd/upshift/internal/view"
	"github.com/upshift/upshift/pkg/paper"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/api"
)

// docFlags are the language and format flags of plan and report.
type docFlags struct{ lang, format string }

func (d *docFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.lang, "lang", "en", "language: en or zh (the plan template's own headings)")
	fs.StringVar(&d.format, "format", "md", "format: md (Markdown) or html")
}

func (d docFlags) parse() (paper.Lang, paper.Format, error) {
	l, err := paper.ParseLang(d.lang)
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", exitInvalid, err)
	}
	f, err := paper.ParseFormat(d.format)
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", exitInvalid, err)
	}
	return l, f, nil
}

func planCmd(out io.Writer) *ffcli.Command {
	var c conn
	var d docFlags
	var file, targetsFile, policyFile string
	var dryRun bool
	fs := flag.NewFlagSet("upshift plan", flag.ContinueOnError)
	fs.StringVar(&file, "f", "", "request file (YAML or JSON)")
	fs.StringVar(&targetsFile, "targets", "", "a targets file declaring the request's targets: their checks, backups and databases")
	fs.StringVar(&policyFile, "policy", "", "the coordinator's policy file: the environment's approval, windows, signature and verify rules")
	fs.BoolVar(&dryRun, "dry-run", false, "submit a dry run first (like submit --dry-run), wait for it, and include what it measured")
	d.register(fs)
	c.register(fs)
	return &ffcli.Command{Name: "plan", ShortUsage: "upshift plan -f FILE [--targets FILE] [--policy FILE] [--dry-run] [--lang en|zh] [--format md|html]",
		ShortHelp: "render a request's implementation plan", FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			lang, format, err := d.parse()
			if err != nil {
				return err
			}
			r, err := readRequest(file, out)
			if err != nil {
				return err
			}
			in := paper.PlanInput{Request: r, Date: time.Now()}
			if targetsFile != "" {
				if in.Targets, err = targets.Load(targetsFile); err != nil {
					return err
				}
			}
			if policyFile != "" {
				p, err := coordinator.LoadPolicy(policyFile)
				if err != nil {
					return err
				}
				in.Environment = environment(p, r.Metadata.Environment)
			}
			if dryRun {
				nc, js, err := c.open()
				if err != nil {
					return err
				}
				defer nc.Close()
				if in.DryRun, err = dryRunSaga(ctx, nc, js, r, c.timeout); err != nil {
					return err
				}
			}
			return paper.Plan(in, lang).Render(out, format)
		}}
}

// environment is what the policy says of env; signatures are required in
// production unless the policy says otherwise, as the coordinator's
// --signature-environments default does.
func environment(p coordinator.Policy, env string) *paper.Environment {
	e, ok := p.Environments[env]
	if !ok {
		return &paper.Environment{RequireSignature: env == "production"}
	}
	out := &paper.Environment{Approval: e.Approval, ApprovalTimeout: e.ApprovalTimeout.Duration, Windows: e.Windows,
		RequireSignature: env == "production", Verify: e.Verify}
	if e.RequireSignature != nil {
		out.RequireSignature = *e.RequireSignature
	}
	if e.Rehearsal != nil {
		out.Rehearsal = e.Rehearsal.Environment
	}
	if e.Confirm != nil {
		out.Confirm = *e.Confirm
	}
	if e.Announce != nil {
		out.Announce = *e.Announce
	}
	return out
}

// dryRunSaga submits r as a dry run, follows it to its end and returns the
// saga with its precheck reports.
func dryRunSaga(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, r spec.Request, timeout time.Duration) (*saga.Saga, error) {
	r.Spec.DryRun = true
	client := api.NewClient(nc)
	sctx, cancel := context.WithTimeout(ctx, timeout)
	id, err := client.Submit(sctx, r)
	cancel()
	if err != nil {
		return nil, err
	}
	if _, err := view.Watch(ctx, js, id, nil); err != nil {
		return nil, fmt.Errorf("could not follow the dry run %s to its end: %w (%w)", id, err, exitUnfollowed)
	}
	gctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := client.Get(gctx, id)
	if err != nil {
		return nil, err
	}
	return &v.Saga, nil
}

func reportCmd(out io.Writer) *ffcli.Command {
	var d docFlags
	c := command("report", "ID [--lang en|zh] [--format md|html]", "render a saga's report: what happened, for a change board", out,
		d.register,
		func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, args []string) error {
			id, err := oneID(args)
			if err != nil {
				return err
			}
			lang, format, err := d.parse()
			if err != nil {
				return err
			}
			client := api.NewClient(nc)
			v, err := client.Get(ctx, id)
			if err != nil {
				return err
			}
			h, err := client.History(ctx, id)
			if err != nil {
				return err
			}
			return paper.Report(v.Saga, h, lang).Render(out, format)
		})
	connect := c.Exec
	c.Exec = func(ctx context.Context, args []string) error {
		// A wrong flag is told before a server is looked for; flags may
		// follow the id.
		if len(args) > 1 {
			if err := c.FlagSet.Parse(args[1:]); err != nil {
				return err
			}
		}
		if _, _, err := d.parse(); err != nil {
			return err
		}
		return connect(ctx, args)
	}
	return c
}
