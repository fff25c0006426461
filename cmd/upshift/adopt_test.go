package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upshift/upshift/services/deploy"
)

func TestAdoptRecordsAHandMadeInstallation(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "web-1")
	opt := filepath.Join(dir, "opt", "app")
	if err := os.MkdirAll(filepath.Join(opt, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(opt, "bin", "app"), []byte("#!/bin/sh\n"), 0o755)
	file := filepath.Join(dir, "targets.yaml")
	os.WriteFile(file, []byte("targets: {web-1: {root: "+root+"}}\n"), 0o644)

	var out bytes.Buffer
	err := run(context.Background(), []string{"adopt", "web-1", "--version", "2.14.9", "--from", opt, "--targets", file}, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"copied " + opt + " into " + filepath.Join(root, "releases", "2.14.9"),
		"adopted " + filepath.Join(root, "releases", "2.14.9") + ": content sha256:", "package unknown",
		"current -> releases/2.14.9 (nothing was current)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if m, err := deploy.ReadMarker(filepath.Join(root, "releases", "2.14.9")); err != nil || !m.Adopted {
		t.Fatalf("marker %+v, %v", m, err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"adopt", "--targets", file, "--version", "2.14.9", "web-1"}, &out); err != nil ||
		!strings.Contains(out.String(), "is upshift's already") {
		t.Fatalf("again: %v\n%s", err, out.String())
	}

	for _, args := range [][]string{
		{"adopt", "web-1", "--targets", file},
		{"adopt", "web-9", "--version", "1", "--targets", file},
		{"adopt", "web-1", "--version", "9.9", "--targets", file},
	} {
		if err := run(context.Background(), args, &bytes.Buffer{}); !errors.Is(err, exitInvalid) {
			t.Errorf("%v: %v", args, err)
		}
	}
}
