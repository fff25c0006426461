package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/cmd/upshift/internal/devstack"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/pkg/testlog"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/coordinator/coordinatord"
)

// world is all of upshift on an embedded server, with two empty targets
// (web-2's precheck fails: it asks for more CPUs than any host has) and a
// package in a directory the services may fetch from.
type world struct {
	s              *devstack.Stack
	pkgURL, digest string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dir := t.TempDir()
	root, root2 := filepath.Join(dir, "web-1"), filepath.Join(dir, "web-2")
	pkgs := filepath.Join(dir, "packages")
	for _, d := range []string{root, root2, pkgs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var tgz bytes.Buffer
	zw := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(zw)
	body := []byte("#!/bin/sh\necho app\n")
	tw.WriteHeader(&tar.Header{Name: "bin/app", Mode: 0o755, Size: int64(len(body))})
	tw.Write(body)
	tw.Close()
	zw.Close()
	pkg := filepath.Join(pkgs, "app-1.0.tar.gz")
	if err := os.WriteFile(pkg, tgz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(tgz.Bytes())
	reg, err := targets.New(map[string]targets.Target{"web-1": {Root: root},
		"web-2": {Root: root2, Precheck: targets.Precheck{MinCPUs: 100000}}}, dir)
	if err != nil {
		t.Fatal(err)
	}
	fast := consumer.Config{AckWait: 2 * time.Second, MaxDeliver: 5,
		Backoff: []time.Duration{50 * time.Millisecond, 200 * time.Millisecond}, Grace: 5 * time.Second}
	s, err := devstack.Start(context.Background(), devstack.Options{Dir: t.TempDir(), Targets: reg, Consumer: fast,
		ArtifactSources: []string{"file://" + pkgs + "/"}, Log: testlog.New(t),
		Coordinator: coordinatord.Settings{Store: coordinatord.StoreKV,
			Engine: coordinator.Config{Consumer: fast, RelayInterval: 500 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return &world{s: s, pkgURL: "file://" + pkg, digest: "sha256:" + hex.EncodeToString(sum[:])}
}

// dryRun submits a dry run installing the package on target.
func (w *world) dryRun(t *testing.T, target string) string {
	t.Helper()
	r := spec.Request{APIVersion: spec.APIVersion, Kind: spec.KindInstall,
		Metadata: spec.Metadata{Name: "app 1.0", Team: "platform", Environment: "test"},
		Spec: spec.Spec{Software: "app", To: "1.0", Targets: []string{target}, DryRun: true,
			Artifact: spec.Artifact{URL: w.pkgURL, Digest: w.digest}}}.WithDefaults()
	id, err := w.s.Client.Submit(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// upshift watch, not on a terminal, prints a plain line per change of a
// real saga, its outcome, and exits with it: 0 for a dry run that passed,
// 1 with the failing step's reason for one that did not.
func TestWatchShowsProgressAndExitsWithTheOutcome(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	watch := func(id string) (string, error) {
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		err := run(ctx, []string{"watch", id, "--nats", w.s.URL()}, &out)
		return out.String(), err
	}

	out, err := watch(w.dryRun(t, "web-1"))
	if err != nil {
		t.Fatalf("a dry run that passes: %v\n%s", err, out)
	}
	// The step's started and succeeded reports are separate messages: the
	// lines between are not always the same.
	want := []string{"...  prechecking            [....................] 0/", "ok   prechecking            [####################] 1/1  ", "=> CHECKED"}
	checkLines(t, out, want)

	out, err = watch(w.dryRun(t, "web-2"))
	if !errors.Is(err, exitFailed) {
		t.Fatalf("a dry run that fails: err %v\n%s", err, out)
	}
	checkLines(t, out, []string{"...  prechecking", "FAIL prechecking            [####################] 1/1  ", "  precheck check web-2: ", "cpus", "=> FAILED"})
	out, err = watch(w.dryRun(t, "web-9"))
	if !errors.Is(err, exitFailed) || !strings.Contains(out, `REFUSED: no service serves target "web-9"`) {
		t.Fatalf("a refused request: err %v\n%s", err, out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Fatalf("terminal codes in plain output:\n%s", out)
	}
}

// checkLines fails unless out has each of want, in order.
func checkLines(t *testing.T, out string, want []string) {
	t.Helper()
	rest := out
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("output lacks %q (in order):\n%s", w, out)
		}
		rest = rest[i+len(w):]
	}
}
