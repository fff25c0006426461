package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/upshift/upshift/cmd/upshift/internal/devstack"
	"github.com/upshift/upshift/cmd/upshift/internal/view"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/coordinator/coordinatord"
)

type devOptions struct {
	data, targetsFile, opsAddr, logLevel string
	trustedKeys                          string
	sources                              []string
	port                                 int
	demo, exit                           bool
	coordinator                          coordinatord.Settings
}

func devCmd(out io.Writer) *ffcli.Command {
	var o devOptions
	fs := flag.NewFlagSet("upshift dev", flag.ContinueOnError)
	fs.StringVar(&o.data, "data", ".upshift-dev", "data directory: JetStream storage, artifacts, logs, the demo's target")
	fs.IntVar(&o.port, "port", 0, "NATS client port (0: any free port)")
	fs.StringVar(&o.targetsFile, "targets", "", "targets file for the phase services (not needed with --demo)")
	service.ListVar(fs, &o.sources, "artifact-sources", nil, "with --targets: comma-separated URL prefixes packages may come from "+
		"(objectstore://"+DefaultBucket+"/, where `upshift artifact put` uploads, is always allowed)")
	fs.StringVar(&o.trustedKeys, "trusted-keys", "", "file of minisign public keys that verify packages' signatures")
	fs.StringVar(&o.opsAddr, "ops-addr", "127.0.0.1:0", "address of /metrics, /healthz, /readyz (empty: off)")
	fs.StringVar(&o.logLevel, "log-level", "info", "level of the log file")
	// The coordinator's own flags, with what suits one process on a laptop
	// as defaults, and the store named by the same two variables as the
	// coordinator's (dev reads no other: a shell set up for a service's
	// main must not change what dev does).
	o.coordinator.HTTPAddr, o.coordinator.Engine.RelayInterval = "127.0.0.1:0", 5*time.Second
	o.coordinator.Store = os.Getenv("UPSHIFT_STORE")
	o.coordinator.DatabaseURL = service.Secret(os.Getenv("UPSHIFT_DATABASE_URL"))
	o.coordinator.Register(fs)
	fs.BoolVar(&o.demo, "demo", false, "build the demo application, install 1.0, upgrade to 1.1 then to 1.2 (rolled back)")
	fs.BoolVar(&o.exit, "exit", false, "with --demo: stop after the demo; exit 0 only if it went as expected (1 if not, 130 if interrupted)")
	return &ffcli.Command{Name: "dev", ShortUsage: "upshift dev [--demo [--exit]] [flags]", FlagSet: fs,
		ShortHelp: "run everything in one process on an embedded NATS server",
		Exec:      func(ctx context.Context, _ []string) error { return runDev(ctx, o, out) }}
}

// marker identifies a data directory made by `upshift dev`, the only kind
// it will empty.
const marker = ".upshift-dev"

func runDev(ctx context.Context, o devOptions, out io.Writer) error {
	ctx, stop := service.Interrupted(ctx)
	defer stop()
	if err := prepareData(o.data, o.demo); err != nil {
		return err
	}
	logPath := filepath.Join(o.data, "upshift.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log, err := service.NewLogger(logFile, o.logLevel, "json")
	if err != nil {
		return err
	}

	var d *devstack.Demo
	var reg *targets.Registry
	sources := o.sources
	switch {
	case o.demo:
		if d, err = devstack.PrepareDemo(ctx, filepath.Join(o.data, "demo"), out); err != nil {
			return err
		}
		fmt.Fprintln(out, d.Describe())
		reg = d.Registry
		sources = append(sources, d.Sources()...)
		defer func() {
			if err := d.Teardown(context.WithoutCancel(ctx)); err != nil {
				fmt.Fprintln(out, "stopping the demo application:", err)
			}
		}()
	case o.targetsFile != "":
		if reg, err = targets.Load(o.targetsFile); err != nil {
			return err
		}
		if len(sources) == 0 {
			return fmt.Errorf("%w: with --targets, give --artifact-sources: the URL prefixes packages may come from", exitInvalid)
		}
	default:
		return fmt.Errorf("%w: give --demo, or --targets FILE for the phase services to serve", exitInvalid)
	}

	// A token made here is printed for the user to copy; one given is a
	// secret, and is not.
	token := "(the one given with --api-token)"
	switch {
	case o.coordinator.APITokensFile != "" && o.coordinator.APIToken == "":
		token = "(one of --api-tokens " + o.coordinator.APITokensFile + ")"
	case o.coordinator.APIToken == "":
		token = rand.Text()
		o.coordinator.APIToken = service.Secret(token)
	}
	sources = append(sources, "objectstore://"+DefaultBucket+"/")
	s, err := devstack.Start(ctx, devstack.Options{Dir: o.data, Port: o.port, Targets: reg, OpsAddr: o.opsAddr,
		Coordinator: o.coordinator, Log: log, ArtifactSources: sources, TrustedKeys: o.trustedKeys})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "draining and stopping…")
		s.Stop()
	}()
	// A part of the stack that dies stops the demo and the process.
	ctx, stopDemo := context.WithCancel(ctx)
	defer stopDemo()
	go func() {
		select {
		case <-s.Done():
			stopDemo()
		case <-ctx.Done():
		}
	}()
	fmt.Fprintf(out, "\nupshift is running: NATS %s, JetStream in %s, sagas in %s\n", s.URL(), filepath.Join(o.data, "jetstream"), o.coordinator.Store)
	if s.Ops != "" {
		fmt.Fprintf(out, "metrics http://%s/metrics, health http://%s/healthz, log %s\n", s.Ops, s.Ops, logPath)
	}
	if s.HTTP != "" {
		fmt.Fprintf(out, "HTTP API http://%s/v1/sagas (writes: Authorization: Bearer %s)\n", s.HTTP, token)
		fmt.Fprintf(out, "web page http://%s/ui/ (sign in with the same token)\n", s.HTTP)
	}
	fmt.Fprintln(out, "every event as it happens, per saga (and the notices that need attention):")
	// Read from the streams, not the subjects: a re-published message
	// reaches subscribers again, while its stream keeps it once.
	p := view.NewPrinter(out)
	for _, src := range []struct{ stream, filter string }{
		{events.StreamEvents, "upshift.evt.>"}, {events.StreamNotify, "upshift.notify.>"},
	} {
		c, err := s.JS.OrderedConsumer(ctx, src.stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{src.filter}, DeliverPolicy: jetstream.DeliverNewPolicy})
		if err != nil {
			return err
		}
		cc, err := c.Consume(func(m jetstream.Msg) { p.Print(m.Data()) })
		if err != nil {
			return err
		}
		defer cc.Stop()
	}

	if d != nil {
		err := d.Scenario(ctx, s, out)
		switch {
		case s.Err() != nil:
			fmt.Fprintln(out, "\nDEMO FAILED: upshift stopped:", s.Err())
			return s.Err()
		case err != nil && ctx.Err() == nil:
			fmt.Fprintln(out, "\nDEMO FAILED:", err)
			if o.exit {
				return exitFailed
			}
		case err != nil:
			fmt.Fprintln(out, "\ndemo interrupted before it finished")
			if o.exit {
				return exitInterrupted
			}
		default:
			fmt.Fprintln(out, "\ndemo done: 1.0 was installed on the empty target, 1.1 was deployed, 1.2 failed verification and was rolled back, 1.1 serves.")
		}
		if o.exit {
			return nil
		}
	}
	fmt.Fprintf(out, "\nstill serving; in another terminal:\n  export UPSHIFT_NATS_URL=%s\n", s.URL())
	if d != nil {
		fmt.Fprintf(out, "  go run ./cmd/upshift submit -f %s --watch\n", filepath.Join(d.Dir, "requests", "upgrade-1.2.yaml"))
	}
	fmt.Fprintf(out, "  go run ./cmd/upshift list\nCtrl-C drains and stops.\n")
	<-ctx.Done()
	if err := s.Err(); err != nil {
		return fmt.Errorf("upshift stopped: %w", err)
	}
	return nil
}

// prepareData makes the data directory; with a fresh demo it first empties
// one that `upshift dev` made before, and refuses any other.
func prepareData(dir string, fresh bool) error {
	if fresh {
		entries, err := os.ReadDir(dir)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return err
		case len(entries) > 0:
			if _, err := os.Stat(filepath.Join(dir, marker)); err != nil {
				return fmt.Errorf("%w: %s is not empty and was not made by upshift dev; choose another --data", exitInvalid, dir)
			}
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, marker), []byte("made by upshift dev; `upshift dev --demo` empties it\n"), 0o644)
}
