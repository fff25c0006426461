// Command upshift is upshift's command line: submit a request and follow its
// saga, inspect sagas, approve, reject, cancel or confirm them, and run everything in
// one process with `upshift dev`.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout)
	var exit exitCode
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &exit):
		if err.Error() != exit.Error() {
			fmt.Fprintln(os.Stderr, "upshift:", strings.TrimPrefix(err.Error(), exit.Error()+": "))
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
	// The flag package prints a command's whole help on any parse error;
	// only -h should. Keep it until the error is known.
	var help bytes.Buffer
	cmds := tree(root)
	for _, c := range cmds {
		if c.FlagSet != nil {
			c.FlagSet.SetOutput(&help)
		}
	}
	err := root.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Stderr.Write(help.Bytes())
		return err
	case err != nil:
		name := "upshift"
		for _, c := range cmds {
			if c.FlagSet != nil && c.FlagSet.Parsed() {
				name = c.FlagSet.Name()
			}
		}
		return fmt.Errorf("%w: %v (see `%s -h`)", exitInvalid, err, name)
	}
	return root.Run(ctx)
}

// tree lists a command and its subcommands, parents first.
func tree(c *ffcli.Command) []*ffcli.Command {
	out := []*ffcli.Command{c}
	for _, sub := range c.Subcommands {
		out = append(out, tree(sub)...)
	}
	return out
}

// unknownCommand is the root's answer to a command it does not know.
func unknownCommand(root *ffcli.Command, args []string) error {
	if len(args) == 0 {
		return flag.ErrHelp
	}
	names := make([]string, len(root.Subcommands))
	for i, c := range root.Subcommands {
		names[i] = c.Name
	}
	return fmt.Errorf("%w: unknown command %q; the commands are %s (see `upshift -h`)", exitInvalid, args[0], strings.Join(names, ", "))
}

// rootCmd is the command line: every command, its flags and their help.
func rootCmd(out io.Writer) *ffcli.Command {
	root := &ffcli.Command{
		Name:       "upshift",
		ShortUsage: "upshift <command> [flags]",
		ShortHelp:  "upgrade orchestration on NATS JetStream",
		LongHelp: "Commands talk to NATS: --nats (default $UPSHIFT_NATS_URL, else nats://127.0.0.1:4222).\n" +
			"Start with `upshift dev --demo`, which runs everything in one process.",
		Subcommands: []*ffcli.Command{
			submitCmd(out), validateCmd(out), statusCmd(out), watchCmd(out), listCmd(out), historyCmd(out), noticesCmd(out), targetsCmd(out),
			decideCmd(out, "approve", "approve a saga waiting for approval"),
			decideCmd(out, "reject", "reject a saga waiting for approval"),
			decideCmd(out, "cancel", "cancel a saga; what it changed is rolled back"),
			confirmCmd(out),
			planCmd(out), reportCmd(out),
			adoptCmd(out), artifactCmd(out), backupsCmd(out), devCmd(out),
		},
	}
	root.Subcommands = append(root.Subcommands, completionCmd(out, func() *ffcli.Command { return rootCmd(io.Discard) }))
	root.Exec = func(_ context.Context, args []string) error { return unknownCommand(root, args) }
	return root
}
