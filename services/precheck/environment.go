package precheck

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/upshift/upshift/pkg/targets"
)

// Environment lists a target's environment checks as its configuration
// declares them, in the order the report shows them: hardware, software,
// network, then third-party dependencies.
func Environment(t targets.Target) []Check {
	var checks []Check
	for _, group := range []func(targets.Target) []Check{hardware, software, network, dependencies} {
		checks = append(checks, group(t)...)
	}
	return checks
}

// Installed checks that the version installed on the target is the one the
// request upgrades from: its Value is the installed version.
func Installed(t targets.Target, from string) Check {
	return Check{Name: "installed version", Threshold: "= " + from, Timeout: t.Precheck.Timeout.Duration,
		Run: func(context.Context) Result {
			installed, err := t.CurrentVersion()
			if err == nil && installed != from {
				err = fmt.Errorf("installed version is %q, the request upgrades from %q", installed, from)
			}
			return Result{Value: installed, Err: err}
		}}
}

// NothingInstalled checks that a first install finds an empty target: no
// current link and no release directory, in service or not. A release put
// there by hand is for `upshift adopt`, not to be installed over.
func NothingInstalled(t targets.Target) Check {
	return Check{Name: "nothing installed", Threshold: "no release", Timeout: t.Precheck.Timeout.Duration,
		Run: func(context.Context) Result {
			cur, err := t.CurrentVersion()
			if err != nil {
				return Result{Err: err}
			}
			if cur != "" {
				return Result{Value: cur + " current", Err: fmt.Errorf(
					"release %s is installed and current: an install needs an empty target (upgrade from %s instead)", cur, cur)}
			}
			entries, err := os.ReadDir(t.Releases())
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return Result{Err: fmt.Errorf("read %s: %w", t.Releases(), err)}
			}
			var found []string
			for _, e := range entries {
				if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
					found = append(found, e.Name())
				}
			}
			if len(found) > 0 {
				return Result{Value: strings.Join(found, ", "), Err: fmt.Errorf(
					"%s holds %s though none is current: adopt or remove it first", t.Releases(), strings.Join(found, ", "))}
			}
			return Result{Value: "none", Detail: "no current link and no release in " + t.Releases()}
		}}
}
