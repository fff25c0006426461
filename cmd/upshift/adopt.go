package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/deploy"
)

// adoptCmd records an installation made by other means as a release. It
// works on the target's files, so it runs on the target's host, with the
// deploy service's targets file; it needs no NATS.
func adoptCmd(out io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("upshift adopt", flag.ContinueOnError)
	file := fs.String("targets", envOr("UPSHIFT_TARGETS", "/etc/upshift/targets.yaml"), "the deploy service's targets file ($UPSHIFT_TARGETS)")
	var o deploy.AdoptOptions
	fs.StringVar(&o.Version, "version", "", "the installed version: the release becomes releases/VERSION (required)")
	fs.StringVar(&o.Digest, "digest", "", "the digest of the package it came from, if known (\"sha256:…\")")
	fs.StringVar(&o.From, "from", "", "copy the installation from this directory into releases/VERSION")
	asJSON := fs.Bool("json", false, "print JSON")
	return &ffcli.Command{Name: "adopt", ShortUsage: "upshift adopt TARGET --version V [--digest D] [--from DIR]",
		ShortHelp: "record an installation made by hand as a release, so upshift can upgrade and roll back to it",
		LongHelp: "Run on the target's host, with the deploy service's targets file. The installation is\n" +
			"releases/VERSION under the target's root, or a directory copied there with --from. No hook runs:\n" +
			"the running program is not touched. Current is pointed at the release only if nothing is current.",
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 1 {
				if err := fs.Parse(args[1:]); err != nil {
					return err
				}
				args = append(args[:1:1], fs.Args()...)
			}
			if len(args) != 1 || o.Version == "" {
				return fmt.Errorf("%w: give one target and --version", exitInvalid)
			}
			reg, err := targets.Load(*file)
			if err != nil {
				return err
			}
			t, err := reg.Get(args[0])
			if err != nil {
				return fmt.Errorf("%w: %w in %s", exitInvalid, err, *file)
			}
			res, err := deploy.Adopt(ctx, t, o)
			if errors.Is(err, deploy.ErrNotAdoptable) {
				return fmt.Errorf("%w: %w", exitInvalid, err)
			}
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(out, res)
			}
			switch {
			case res.Already:
				fmt.Fprintf(out, "%s is upshift's already (package %s); nothing changed\n", res.Release, orUnknown(res.Marker.Digest))
				return nil
			case res.Copied != "":
				fmt.Fprintf(out, "copied %s into %s\n", res.Copied, res.Release)
			}
			fmt.Fprintf(out, "adopted %s: content %s, package %s\n", res.Release, res.Marker.Content, orUnknown(res.Marker.Digest))
			if res.Switched {
				fmt.Fprintf(out, "current -> releases/%s (nothing was current)\n", o.Version)
			} else if res.Current != o.Version {
				fmt.Fprintf(out, "current stays releases/%s\n", res.Current)
			}
			return nil
		}}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
