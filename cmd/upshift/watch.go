package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/upshift/upshift/cmd/upshift/internal/view"
)

func watchCmd(out io.Writer) *ffcli.Command {
	var eventLog bool
	return command("watch", "ID [--events]",
		"show a saga's progress until it ends, a line per phase and batch; exit 0 only if it succeeded (a dry run: checked)", out,
		func(fs *flag.FlagSet) {
			fs.BoolVar(&eventLog, "events", false, "print every event instead, one line each (as submit --watch does)")
		},
		func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, args []string) error {
			id, err := oneID(args)
			if err != nil {
				return err
			}
			if eventLog {
				return follow(context.WithoutCancel(ctx), js, id, out)
			}
			return watchProgress(context.WithoutCancel(ctx), js, id, out, terminal(out))
		})
}

// terminal reports whether w is a terminal, where progress is redrawn in
// place; elsewhere (a file, a pipe, a test) it is a line per change.
func terminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// watchProgress follows a saga, showing its progress; the exit code says
// how it ended.
func watchProgress(ctx context.Context, js jetstream.JetStream, id string, out io.Writer, tty bool) error {
	var p view.Progress
	add := func(data []byte) {
		p.Add(data)
		for _, l := range p.Changes() {
			fmt.Fprintln(out, l)
		}
	}
	var stop func()
	if tty {
		term := &view.Terminal{W: out}
		done := make(chan struct{})
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			tick := time.NewTicker(150 * time.Millisecond)
			defer tick.Stop()
			for frame := 0; ; frame++ {
				term.Draw(p.Frame(time.Now(), frame))
				select {
				case <-done:
					term.Draw(p.Frame(time.Now(), frame))
					return
				case <-tick.C:
				}
			}
		}()
		add = p.Add
		stop = func() { close(done); <-stopped }
	}
	end, err := view.Watch(ctx, js, id, add)
	if stop != nil {
		stop()
	}
	if err != nil {
		return fmt.Errorf("could not follow the saga to its end: %w (%w)", err, exitUnfollowed)
	}
	return outcome(end)
}
