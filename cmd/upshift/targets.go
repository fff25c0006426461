package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/upshift/upshift/pkg/fleet"
	"github.com/upshift/upshift/pkg/labels"
	"github.com/upshift/upshift/services/coordinator/api"
)

func targetsCmd(out io.Writer) *ffcli.Command {
	var selector string
	var asJSON bool
	return command("targets", "[--selector role=web,zone!=dmz]",
		"list the registry of targets: what each running service or agent announces it serves", out,
		func(fs *flag.FlagSet) {
			fs.StringVar(&selector, "selector", "", "only the targets these labels choose (key=value or key!=value, comma = and)")
			fs.BoolVar(&asJSON, "json", false, "print JSON")
		},
		func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("%w: upshift targets takes no arguments, got %q", exitInvalid, args)
			}
			if selector != "" {
				if _, err := labels.ParseSelector(selector); err != nil {
					return fmt.Errorf("%w: %v", exitInvalid, err)
				}
			}
			l, err := api.NewClient(nc).Targets(ctx, selector)
			if err != nil {
				return err
			}
			if len(l.Unreadable) > 0 {
				fmt.Fprintf(os.Stderr, "upshift: warning: not listed, as they cannot be decoded: %s\n",
					strings.Join(l.Unreadable, ", "))
			}
			if asJSON {
				return printJSON(out, l.Entries)
			}
			printTargets(out, l.Entries, time.Now())
			return nil
		})
}

func printTargets(out io.Writer, entries []fleet.Entry, now time.Time) {
	if len(entries) == 0 {
		fmt.Fprintln(out, "no targets announced")
		return
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TARGET\tLABELS\tVERSION\tHOST\tSERVICE\tINSTANCE\tLAST SEEN")
	for _, e := range entries {
		var labels []string
		for k, v := range e.Labels {
			labels = append(labels, k+"="+v)
		}
		slices.Sort(labels)
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s ago\n", e.Target, orDash(strings.Join(labels, ",")), orDash(e.Version),
			orDash(e.Host), e.Service, e.Instance, now.Sub(e.Seen).Round(time.Second))
	}
	_ = w.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
