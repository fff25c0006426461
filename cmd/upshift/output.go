package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/goccy/go-yaml"
)

// Output formats of the read commands.
const (
	outTable = "table"
	outJSON  = "json"
	outYAML  = "yaml"
)

// output is the --output flag of a read command, with --json its alias.
// A bad value is a flag error: exit 2, before anything is asked of NATS.
type output struct{ format string }

func (o *output) String() string { return o.format }

func (o *output) Set(v string) error {
	switch v {
	case outTable, outJSON, outYAML:
		o.format = v
		return nil
	}
	return fmt.Errorf("%q is not an output format: table, json or yaml", v)
}

// register adds --output (default def) and --json to fs.
func (o *output) register(fs *flag.FlagSet, def string) {
	o.format = def
	fs.Var(o, "output", "output format: table, json or yaml")
	fs.BoolFunc("json", "same as --output json", func(string) error { o.format = outJSON; return nil })
}

// print writes v in the chosen format; table writes it for people.
func (o *output) print(out io.Writer, v any, table func() error) error {
	switch o.format {
	case outJSON:
		return printJSON(out, v)
	case outYAML:
		return printYAML(out, v)
	}
	return table()
}

// printYAML writes v as YAML with the field names of its JSON: the same
// document in another syntax.
func printYAML(out io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	y, err := yaml.JSONToYAML(b)
	if err != nil {
		return err
	}
	_, err = out.Write(y)
	return err
}
