// Package demo is the kit behind `upshift dev`: it builds versions of a tiny
// HTTP demo application from source embedded here, packs each into a release
// artifact, and prepares a local target (directories, a ctl script for the
// start and stop hooks, health settings) that the phase services can upgrade
// and roll back for real.
//
// It needs only the go command and sh on the machine: the ctl script waits
// for the app with the app's own --probe mode rather than curl or wget.
// The demo target is one process on 127.0.0.1, unix only, with no database
// and no shared configuration.
package demo

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Errors, for errors.Is.
var (
	// ErrNoGo means the go command is not on PATH.
	ErrNoGo = errors.New("the go command is not on PATH: install Go 1.21 or later from https://go.dev/dl/ and put its bin directory on PATH")
	// ErrBadVersion is a version that cannot name a release directory.
	ErrBadVersion = errors.New("bad version")
	// ErrBuild is a failed go build.
	ErrBuild = errors.New("go build failed")
)

//go:embed app/main.go.txt
var appSource []byte

// appGoMod is old on purpose: any Go from 1.21 on builds the app with
// GOTOOLCHAIN=local and without downloading a toolchain.
const appGoMod = "module upshift.dev/demo-app\n\ngo 1.21\n"

// UnhealthyReason is what /healthz of an unhealthy build answers after
// "unhealthy: ".
const UnhealthyReason = "built unhealthy to show a roll-back"

var versionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$`)

func checkVersion(version string) error {
	if !versionRE.MatchString(version) {
		return fmt.Errorf("%w %q: use letters, digits, '.', '_', '+' and '-'", ErrBadVersion, version)
	}
	return nil
}

// BuildApp builds the demo app as version, healthy or not, under workDir and
// returns the binary's path (workDir/build/<version>[-unhealthy]/demo-app).
func BuildApp(ctx context.Context, workDir, version string, healthy bool) (string, error) {
	if err := checkVersion(version); err != nil {
		return "", fmt.Errorf("build demo app: %w", err)
	}
	binPath, err := buildApp(ctx, workDir, version, healthy)
	if err != nil {
		return "", fmt.Errorf("build demo app %s: %w", version, err)
	}
	return binPath, nil
}

func buildApp(ctx context.Context, workDir, version string, healthy bool) (string, error) {
	// go build gets only what finds the toolchain and shares the user's
	// build and module caches; nothing of the user's GOFLAGS or go.work
	// leaks in. It builds with the default settings (no -trimpath, cgo as
	// the machine has it), the ones `go run ./cmd/upshift` just used, so the
	// standard library comes from the build cache instead of being compiled
	// again: a minute and a half on a fresh machine otherwise.
	env := []string{"GOWORK=off", "GOFLAGS=", "GOTOOLCHAIN=local"}
	for _, k := range []string{"PATH", "HOME", "GOROOT", "GOCACHE", "GOPATH", "GOMODCACHE",
		"GOPROXY", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", ErrNoGo
	}
	workDir, err = filepath.Abs(workDir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return "", err
	}
	src, err := os.MkdirTemp(workDir, "demo-app-src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	if err := os.WriteFile(filepath.Join(src, "main.go"), appSource, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(appGoMod), 0o644); err != nil {
		return "", err
	}

	name := version
	ldflags := "-s -w -X main.version=" + version
	if !healthy {
		name += "-unhealthy"
		ldflags += " -X 'main.unhealthy=" + UnhealthyReason + "'"
	}
	binPath := filepath.Join(workDir, "build", name, "demo-app")
	if err := os.MkdirAll(filepath.Dir(binPath), 0o755); err != nil {
		return "", err
	}
	// -buildvcs=false: workDir may sit inside someone's git checkout, and
	// stamping VCS data needs git and a sane repository.
	cmd := exec.CommandContext(ctx, goBin, "build", "-buildvcs=false",
		"-ldflags", ldflags, "-o", binPath, ".")
	cmd.Dir, cmd.Env = src, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("%w: %v: %s", ErrBuild, err, lastLines(string(out), 20))
	}
	return binPath, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
