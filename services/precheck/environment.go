package precheck

import (
	"context"
	"fmt"

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
