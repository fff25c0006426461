package precheck

import (
	"context"

	"github.com/upshift/upshift/pkg/checks"
	"github.com/upshift/upshift/pkg/events"
)

// The runner of checks is shared with the verify service: pkg/checks.
type (
	// Check is one check of the plan.
	Check = checks.Check
	// Result is what a check found.
	Result = checks.Result
)

// Parallel is how many checks of one target run at once.
const Parallel = checks.Parallel

// Run runs checks, parallel at a time, and returns a line per check in
// their order.
func Run(ctx context.Context, cs []Check, parallel int) []events.ReportLine {
	return checks.Run(ctx, cs, parallel)
}

// Failures says which lines failed and what they measured, in one line.
func Failures(report []events.ReportLine) string { return checks.Failures(report) }
