package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// completionCmd prints a shell's completion script, generated from the
// command tree the help is printed from, so the two cannot disagree.
func completionCmd(out io.Writer, root func() *ffcli.Command) *ffcli.Command {
	fs := flag.NewFlagSet("upshift completion", flag.ContinueOnError)
	return &ffcli.Command{Name: "completion", ShortUsage: "upshift completion bash|zsh|fish",
		ShortHelp: "print a shell completion script: source <(upshift completion bash)", FlagSet: fs,
		Exec: func(_ context.Context, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("%w: give one shell: bash, zsh or fish", exitInvalid)
			}
			cmds := completions(root())
			switch args[0] {
			case "bash":
				_, err := io.WriteString(out, bashScript(cmds))
				return err
			case "zsh":
				// zsh runs bash's completion functions through bashcompinit.
				_, err := io.WriteString(out, "#compdef upshift\nautoload -U +X bashcompinit && bashcompinit\n"+bashScript(cmds))
				return err
			case "fish":
				_, err := io.WriteString(out, fishScript(cmds))
				return err
			}
			return fmt.Errorf("%w: %q is not a shell upshift completes: bash, zsh or fish", exitInvalid, args[0])
		}}
}

// completion is what a shell offers after a command: its path
// ("upshift backups list"), its subcommands and its flags.
type completion struct {
	path  string
	help  string
	subs  []string
	flags []flagHelp
}

type flagHelp struct{ name, help string }

// dashed is a flag as typed: -f for a letter, --name for a word.
func (f flagHelp) dashed() string {
	if len(f.name) == 1 {
		return "-" + f.name
	}
	return "--" + f.name
}

func completions(root *ffcli.Command) []completion {
	var out []completion
	var walk func(c *ffcli.Command, path string)
	walk = func(c *ffcli.Command, path string) {
		cp := completion{path: path, help: c.ShortHelp}
		for _, s := range c.Subcommands {
			cp.subs = append(cp.subs, s.Name)
		}
		if path == root.Name+" completion" {
			cp.subs = []string{"bash", "zsh", "fish"}
		}
		if c.FlagSet != nil {
			c.FlagSet.VisitAll(func(f *flag.Flag) {
				cp.flags = append(cp.flags, flagHelp{f.Name, strings.SplitN(f.Usage, "\n", 2)[0]})
			})
		}
		out = append(out, cp)
		for _, s := range c.Subcommands {
			walk(s, path+" "+s.Name)
		}
	}
	walk(root, root.Name)
	return out
}

func bashScript(cmds []completion) string {
	var b strings.Builder
	b.WriteString(`# bash completion for upshift: source <(upshift completion bash)
_upshift() {
    local cur=${COMP_WORDS[COMP_CWORD]} cmd=upshift i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "$cmd ${COMP_WORDS[i]}" in
`)
	var paths []string
	for _, c := range cmds[1:] {
		paths = append(paths, `"`+c.path+`"`)
	}
	fmt.Fprintf(&b, "            %s) cmd=\"$cmd ${COMP_WORDS[i]}\" ;;\n", strings.Join(paths, "|"))
	b.WriteString(`        esac
    done
    local subs="" flags=""
    case "$cmd" in
`)
	for _, c := range cmds {
		var flags []string
		for _, f := range c.flags {
			flags = append(flags, f.dashed())
		}
		fmt.Fprintf(&b, "        %q) subs=%q; flags=%q ;;\n", c.path, strings.Join(c.subs, " "), strings.Join(append(flags, "-h"), " "))
	}
	b.WriteString(`    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    elif [[ -n $subs ]]; then
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -F _upshift upshift
`)
	return b.String()
}

// fishQuote quotes s for fish, in single quotes.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func fishScript(cmds []completion) string {
	var b strings.Builder
	b.WriteString("# fish completion for upshift: upshift completion fish | source\n")
	var paths []string
	for _, c := range cmds[1:] {
		paths = append(paths, fishQuote(c.path))
	}
	fmt.Fprintf(&b, "set -g __upshift_commands %s\n", strings.Join(paths, " "))
	b.WriteString(`function __upshift_path
    set -l cmd upshift
    for w in (commandline -opc)[2..-1]
        if contains -- "$cmd $w" $__upshift_commands
            set cmd "$cmd $w"
        end
    end
    echo $cmd
end
complete -c upshift -f
`)
	help := map[string]string{}
	for _, c := range cmds {
		help[c.path] = c.help
	}
	for _, c := range cmds {
		cond := fishQuote(`test (__upshift_path) = "` + c.path + `"`)
		for _, s := range c.subs {
			fmt.Fprintf(&b, "complete -c upshift -n %s -a %s -d %s\n", cond, s, fishQuote(help[c.path+" "+s]))
		}
		for _, f := range c.flags {
			opt := "-l " + f.name
			if len(f.name) == 1 {
				opt = "-s " + f.name
			}
			fmt.Fprintf(&b, "complete -c upshift -n %s %s -d %s\n", cond, opt, fishQuote(f.help))
		}
	}
	return b.String()
}
