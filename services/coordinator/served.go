package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/spec"
)

// unserved names the targets of req that some phase service serves on no
// instance: each instance of a service creates, for every target it serves,
// a durable consumer on COMMANDS by a name known to both sides, which
// outlives the instance's restarts. A command for a target without one would
// sit in the work queue until its phase's deadline; the request is refused
// at once instead, saying what is missing.
func (c *Coordinator) unserved(ctx context.Context, req spec.Request) ([]string, error) {
	var problems []string
	for _, t := range req.Spec.Targets {
		var missing []string
		for _, p := range events.Phases {
			_, err := c.js.Consumer(ctx, events.StreamCommands, events.CommandConsumer(p, t))
			switch {
			case errors.Is(err, jetstream.ErrConsumerNotFound):
				missing = append(missing, string(p))
			case err != nil:
				return nil, fmt.Errorf("look up who serves %s: %w", t, err)
			}
		}
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("no service serves target %q: %s", t, strings.Join(missing, ", ")))
		}
	}
	return problems, nil
}
