package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/upshift/upshift/services/backup"
)

// backupsCmd shows the backups the backup service keeps in the Object
// Store (the default storage): what there is, per target, and what one
// holds. Backups kept in a target's backup directory are on that host.
func backupsCmd(out io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("upshift backups", flag.ContinueOnError)
	return &ffcli.Command{Name: "backups", ShortUsage: "upshift backups list|show|restore ...",
		ShortHelp: "list and show the backups kept in the Object Store; restore one by hand, as a saga", FlagSet: fs,
		Subcommands: []*ffcli.Command{backupsListCmd(out), backupsShowCmd(out), backupsRestoreCmd(out)},
		Exec:        func(context.Context, []string) error { return flag.ErrHelp }}
}

func backupsListCmd(out io.Writer) *ffcli.Command {
	var bucket, target string
	var o output
	c := command("list", "[--target T] [--bucket B]", "list the backups, newest first", out,
		func(fs *flag.FlagSet) {
			o.register(fs, outTable)
			fs.StringVar(&bucket, "bucket", backup.DefaultBucket, "the backup service's Object Store bucket")
			fs.StringVar(&target, "target", "", "only this target's")
		},
		func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream, args []string) error {
			if len(args) != 0 {
				return fmt.Errorf("%w: list takes no arguments", exitInvalid)
			}
			ms, err := (&backup.Store{JS: js, Bucket: bucket}).List(ctx, target)
			if err != nil {
				return err
			}
			return o.print(out, ms, func() error { return backupTable(out, ms) })
		})
	c.ShortUsage = "upshift backups list [--target T] [--bucket B] [--output table|json|yaml]"
	return c
}

func backupTable(out io.Writer, ms []*backup.Manifest) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CREATED\tTARGET\tSOFTWARE\tVERSION\tSAGA\tBYTES\tDATABASES")
	for _, m := range ms {
		size := m.Archive.Size
		for _, d := range m.Databases {
			size += d.Size
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", m.Created.Format(time.RFC3339), m.Target, m.Software, m.Version, m.Saga, size, len(m.Databases))
	}
	return w.Flush()
}

func backupsShowCmd(out io.Writer) *ffcli.Command {
	var bucket, target string
	var o output
	c := command("show", "SAGA --target T [--bucket B]", "print a backup's manifest: files, digests, databases and row counts", out,
		func(fs *flag.FlagSet) {
			o.register(fs, outJSON)
			fs.StringVar(&bucket, "bucket", backup.DefaultBucket, "the backup service's Object Store bucket")
			fs.StringVar(&target, "target", "", "the target backed up (required)")
		},
		func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream, args []string) error {
			if len(args) != 1 || target == "" {
				return fmt.Errorf("%w: give the saga id and --target", exitInvalid)
			}
			m, err := (&backup.Store{JS: js, Bucket: bucket}).Manifest(ctx, target, args[0])
			if err != nil {
				return err
			}
			return o.print(out, m, func() error { return manifestTable(out, m) })
		})
	c.ShortUsage = "upshift backups show SAGA --target T [--bucket B] [--output json|yaml|table]"
	return c
}

// manifestTable is a backup's manifest in short: where it is and what it
// holds; the files are in --output json or yaml.
func manifestTable(out io.Writer, m *backup.Manifest) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "saga\t%s\ntarget\t%s\nsoftware\t%s %s\ncreated\t%s\nlocation\t%s\n",
		m.Saga, m.Target, m.Software, m.Version, m.Created.Format(time.RFC3339), m.Location)
	fmt.Fprintf(w, "archive\t%s (%d bytes, %d entries)\n", m.Archive.File, m.Archive.Size, len(m.Entries))
	for _, d := range m.Databases {
		fmt.Fprintf(w, "database\t%s (%d bytes)\n", d.Name, d.Size)
	}
	return w.Flush()
}
