package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Each shell's script offers every command and every flag of the help's
// command tree; the bash script is valid bash and completes as typed.
func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	script := func(shell string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(context.Background(), []string{"completion", shell}, &out); err != nil {
			t.Fatalf("%s: %v", shell, err)
		}
		return out.String()
	}
	scripts := map[string]string{"bash": script("bash"), "zsh": script("zsh"), "fish": script("fish")}
	for _, c := range completions(rootCmd(&bytes.Buffer{})) {
		for shell, s := range scripts {
			if !strings.Contains(s, `"`+c.path+`"`) && !strings.Contains(s, `'`+c.path+`'`) {
				t.Errorf("%s: no %q", shell, c.path)
			}
		}
		for _, f := range c.flags {
			if !strings.Contains(scripts["bash"], f.dashed()) || !strings.Contains(scripts["fish"], " "+f.name+" -d ") {
				t.Errorf("%s: no flag %s", c.path, f.name)
			}
		}
	}
	for _, name := range []string{"watch", "list", "completion", "backups list"} {
		if !strings.Contains(scripts["bash"], `"upshift `+name+`"`) {
			t.Errorf("bash: no upshift %s", name)
		}
	}

	file := filepath.Join(t.TempDir(), "upshift.bash")
	if err := os.WriteFile(file, []byte(scripts["bash"]), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", "-n", file).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	complete := func(words string) string {
		t.Helper()
		w := strings.Fields(words)
		if strings.HasSuffix(words, " ") {
			w = append(w, "")
		}
		cmd := exec.Command("bash", "-c", `source "$1"; COMP_WORDS=("${@:2}"); COMP_CWORD=$(($# - 2)); _upshift; echo "${COMPREPLY[*]}"`, "bash", file)
		cmd.Args = append(cmd.Args, w...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", words, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for words, want := range map[string]string{
		"upshift wa":                     "watch",
		"upshift backups ":               "list show restore",
		"upshift backups list --ta":      "--target",
		"upshift list --si":              "--since",
		"upshift --nats x status x --ou": "--output",
		"upshift completion ":            "bash zsh fish",
	} {
		if got := complete(words); got != want {
			t.Errorf("%q completes to %q, want %q", words, got, want)
		}
	}
	if err := run(context.Background(), []string{"completion", "tcsh"}, &bytes.Buffer{}); !errors.Is(err, exitInvalid) {
		t.Errorf("tcsh: %v", err)
	}
}
