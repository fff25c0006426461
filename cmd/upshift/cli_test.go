package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateListsEveryProblem(t *testing.T) {
	f := filepath.Join(t.TempDir(), "r.yaml")
	os.WriteFile(f, []byte("apiVersion: upshift/v1\nkind: Upgrade\nmetadata: {team: ops}\nspec: {software: x, tagets: [a]}\n"), 0o644)
	var out bytes.Buffer
	err := run(context.Background(), []string{"validate", "-f", f}, &out)
	if !errors.Is(err, exitInvalid) {
		t.Fatalf("err %v", err)
	}
	for _, want := range []string{f + ":4:21: spec.tagets: unknown field", f + ":3:1: metadata.environment: required", f + ":4:1: spec.from: required", "spec.targets: at least one"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"validate", "-f", "../../examples/upgrade.yaml"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "valid: upgrade of billing from 4.1 to 4.2 of 3 target(s) in production") {
		t.Fatalf("output %q", out.String())
	}
}

func TestFlagsAfterTheSagaID(t *testing.T) {
	// No server: the command fails connecting, after parsing its arguments.
	err := run(context.Background(), []string{"cancel", "some-id", "--comment", "wrong day", "--nats", "nats://127.0.0.1:1", "--timeout", "1s"}, &bytes.Buffer{})
	if err == nil || errors.Is(err, exitInvalid) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("err %v: flags after the id were not parsed", err)
	}
}

// A secret set in the environment never shows in any command's -h, where
// flag defaults are printed.
func TestHelpShowsNoSecret(t *testing.T) {
	const password, dbPassword, token = "hunter2-nats", "hunter2-db", "hunter2-token"
	t.Setenv("UPSHIFT_NATS_PASSWORD", password)
	t.Setenv("UPSHIFT_NATS_URL", "nats://alice:"+password+"@127.0.0.1:4222")
	t.Setenv("UPSHIFT_DATABASE_URL", "postgres://postgres:"+dbPassword+"@127.0.0.1:5432/test")
	t.Setenv("UPSHIFT_API_TOKEN", token)
	for i := range rootCmd(&bytes.Buffer{}).Subcommands {
		root := rootCmd(&bytes.Buffer{})
		c := root.Subcommands[i]
		var help bytes.Buffer
		c.FlagSet.SetOutput(&help)
		if err := root.Parse([]string{c.Name, "-h"}); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s -h: %v", c.Name, err)
		}
		if help.Len() == 0 {
			t.Fatalf("%s -h printed nothing", c.Name)
		}
		for _, secret := range []string{password, dbPassword, token} {
			if strings.Contains(help.String(), secret) {
				t.Errorf("upshift %s -h shows a secret:\n%s", c.Name, help.String())
			}
		}
	}
}

func TestJSONGoesWithADryRun(t *testing.T) {
	err := run(context.Background(), []string{"submit", "-f", "../../examples/upgrade.yaml", "--json", "--nats", "nats://127.0.0.1:1", "--timeout", "1s"}, &bytes.Buffer{})
	if !errors.Is(err, exitInvalid) {
		t.Fatalf("err %v", err)
	}
}

// A typo is an error a script can tell from success: exit 2, one line.
func TestAnUnknownCommandOrFlagIsAnError(t *testing.T) {
	for _, args := range [][]string{{"nosuch"}, {"list", "--nosuch"}, {"submit", "-f"}} {
		var out bytes.Buffer
		err := run(context.Background(), args, &out)
		if !errors.Is(err, exitInvalid) {
			t.Errorf("%v: err %v", args, err)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "-h`") {
			t.Errorf("%v: message %q", args, msg)
		}
	}
	if err := run(context.Background(), []string{"nosuch"}, &bytes.Buffer{}); !strings.Contains(err.Error(), "the commands are submit, validate") {
		t.Errorf("message %q does not list the commands", err)
	}
	if err := run(context.Background(), []string{"list", "-h"}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}
