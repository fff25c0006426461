package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/services/backup"
	"github.com/upshift/upshift/services/coordinator/api"
)

// backupsRestoreCmd puts an earlier saga's backup back on targets by hand.
// It submits a Maintenance request whose action is restore, so the restore
// is a saga like any other (audited, notified, cancellable): the backup
// service checks the backup at precheck, the targets are backed up first,
// then restored and verified, and a failure puts back what was there.
func backupsRestoreCmd(out io.Writer) *ffcli.Command {
	var team, env, software, name, bucket string
	var targetList stringList
	var watch bool
	c := command("restore", "SAGA --target T [--target T2] --team TEAM --environment ENV [--software S] [--watch]",
		"restore the backup of saga SAGA on targets: a restore saga, recorded and notified", out,
		func(fs *flag.FlagSet) {
			fs.Var(&targetList, "target", "a target to restore (required; repeat, or separate with commas)")
			fs.StringVar(&team, "team", "", "the team the restore is submitted as (required)")
			fs.StringVar(&env, "environment", "", "the targets' environment (required)")
			fs.StringVar(&software, "software", "", "the software backed up; default: the one the backup's manifest in --bucket names")
			fs.StringVar(&name, "name", "", "a label for the saga")
			fs.StringVar(&bucket, "bucket", backup.DefaultBucket, "the backup service's Object Store bucket, to read --software from")
			fs.BoolVar(&watch, "watch", false, "follow the saga until it ends; exit 0 only if it succeeded")
		},
		func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, args []string) error {
			if len(args) != 1 || len(targetList) == 0 || team == "" || env == "" {
				return fmt.Errorf("%w: give the saga id whose backup to restore, --target, --team and --environment", exitInvalid)
			}
			from := args[0]
			if software == "" {
				m, err := (&backup.Store{JS: js, Bucket: bucket}).Manifest(ctx, targetList[0], from)
				if errors.Is(err, backup.ErrNoBackup) {
					return fmt.Errorf("%w: %w; give --software if the backups are kept on the targets' hosts", exitInvalid, err)
				}
				if err != nil {
					return err
				}
				software = m.Software
			}
			r := spec.Request{APIVersion: spec.APIVersion, Kind: spec.KindMaintenance,
				Metadata: spec.Metadata{Name: name, Team: team, Environment: env},
				Spec: spec.Spec{Software: software, Targets: targetList,
					Maintenance: &spec.Maintenance{Actions: []string{spec.ActionRestore}, Backup: from}},
			}.WithDefaults()
			if err := r.Validate(); err != nil {
				var verr *spec.ValidationError
				if errors.As(err, &verr) {
					fmt.Fprintln(out, "not a valid restore:")
					for _, p := range verr.Problems {
						fmt.Fprintf(out, "  %s\n", p)
					}
					return exitInvalid
				}
				return err
			}
			id, err := api.NewClient(nc).Submit(ctx, r)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "submitted %s: %s\n", id, r.Title())
			if !watch {
				fmt.Fprintf(out, "follow it with: upshift watch %s\n", id)
				return nil
			}
			return follow(context.WithoutCancel(ctx), js, id, out)
		})
	c.ShortUsage = "upshift backups restore SAGA --target T --team TEAM --environment ENV [--software S] [--watch]"
	return c
}

// stringList is a flag given several times or with commas.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
