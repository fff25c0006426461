package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/notify"
)

// The examples are what a new user copies: each must be valid.
func TestExamplesAreValid(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		switch filepath.Base(f) {
		case "targets.yaml":
			if _, err := targets.Parse(b, "/"); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			continue
		case "notify.yaml":
			// Loaded by the notify service's own tests, secrets and all.
			if _, err := notify.ParseRoutes(b); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			continue
		case "policy.yaml":
			if _, err := coordinator.LoadPolicy(f); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			continue
		}
		if _, err := spec.Parse(b); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
