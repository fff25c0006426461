// Command upshift is upshift's command line: submit a request and follow its
// saga, inspect sagas, approve, reject or cancel them, and run everything in
// one process with `upshift dev`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/peterbourgon/ff/v3/ffcli"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout)
	var exit exitCode
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &exit):
		if err.Error() != exit.Error() {
			fmt.Fprintln(os.Stderr, "upshift:", err)
		}
		os.Exit(int(exit))
	default:
		fmt.Fprintln(os.Stderr, "upshift:", err)
		os.Exit(1)
	}
}

// exitCode ends the program with a code and no message: what went wrong was
// printed already.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// Exit codes.
const (
	exitFailed  exitCode = 1 // the saga did not succeed
	exitInvalid exitCode = 2 // the request or the command line is wrong
	// exitUnfollowed: the saga could not be followed to its end (NATS
	// gone for good); it may still be running.
	exitUnfollowed exitCode = 3
	// exitInterrupted: stopped by a signal before it finished (128+SIGINT).
	exitInterrupted exitCode = 130
)

func run(ctx context.Context, args []string, out io.Writer) error {
	root := rootCmd(out)
	if err := root.Parse(args); err != nil {
		return err
	}
	return root.Run(ctx)
}

// rootCmd is the command line: every command, its flags and their help.
func rootCmd(out io.Writer) *ffcli.Command {
	return &ffcli.Command{
		Name:       "upshift",
		ShortUsage: "upshift <command> [flags]",
		ShortHelp:  "upgrade orchestration on NATS JetStream",
		LongHelp: "Commands talk to NATS: --nats (default $UPSHIFT_NATS_URL, else nats://127.0.0.1:4222).\n" +
			"Start with `upshift dev --demo`, which runs everything in one process.",
		Subcommands: []*ffcli.Command{
			submitCmd(out), validateCmd(out), statusCmd(out), watchCmd(out), listCmd(out), historyCmd(out), noticesCmd(out),
			decideCmd(out, "approve", "approve a saga waiting for approval"),
			decideCmd(out, "reject", "reject a saga waiting for approval"),
			decideCmd(out, "cancel", "cancel a saga; what it changed is rolled back"),
			adoptCmd(out), devCmd(out),
		},
		Exec: func(context.Context, []string) error { return flag.ErrHelp },
	}
}
