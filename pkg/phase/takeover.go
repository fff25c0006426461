package phase

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
)

// The server's refusals of a consumer that would overlap another on a work
// queue: filtered consumer not unique, and several unfiltered ones.
const (
	errCodeWQNotUnique          jetstream.ErrorCode = 10100
	errCodeWQMultipleUnfiltered jetstream.ErrorCode = 10099
)

// ensure creates or updates the instance's consumer. On the COMMANDS work
// queue no two consumers may share a subject, so one that covers only
// commands of this instance's targets for its service stands in its way:
// a consumer per target of a version before one consumer served every
// target of an instance, or this instance's consumer for a former set of
// targets (one fewer, before a target was added). Those are deleted, with
// their followers of lost messages; their unsettled commands stay in the
// stream, and the new consumer delivers them. A consumer that also covers
// a target this instance does not serve belongs to another instance with
// another set of targets: that is refused, naming it. Instances of one
// service serve either the same set of targets or sets apart.
func (s *Service) ensure(ctx context.Context, r *consumer.Runner, cc consumer.Config) error {
	_, err := r.Ensure(ctx)
	var api *jetstream.APIError
	if err == nil || !errors.As(err, &api) ||
		(api.ErrorCode != errCodeWQNotUnique && api.ErrorCode != errCodeWQMultipleUnfiltered) {
		return err
	}
	stream, lerr := s.js.Stream(ctx, events.StreamCommands)
	if lerr != nil {
		return errors.Join(err, lerr)
	}
	var replaced, others []string
	list := stream.ListConsumers(ctx)
	for info := range list.Info() {
		c := info.Config
		filters := c.FilterSubjects
		if c.FilterSubject != "" {
			filters = append(filters, c.FilterSubject)
		}
		mine, overlaps := len(filters) > 0, len(filters) == 0
		for _, f := range filters {
			in := slices.Contains(cc.Filters, f)
			mine, overlaps = mine && in, overlaps || in
		}
		if info.Name == cc.Name || !overlaps {
			continue
		}
		if mine && (strings.HasPrefix(info.Name, string(s.cfg.Service)+"-") || strings.HasPrefix(info.Name, string(s.cfg.Service)+"_")) {
			replaced = append(replaced, info.Name)
		} else {
			others = append(others, fmt.Sprintf("%s (%s)", info.Name, strings.Join(filters, ", ")))
		}
	}
	if lerr := list.Err(); lerr != nil {
		return fmt.Errorf("%w; listing the consumers in its way: %w", err, lerr)
	}
	if len(others) > 0 {
		return fmt.Errorf("%w: consumers of other instances cover some of these targets' commands and others too: %s; "+
			"instances of a service serve the same set of targets or sets apart", err, strings.Join(others, "; "))
	}
	for _, name := range replaced {
		if derr := s.js.DeleteConsumer(ctx, events.StreamCommands, name); derr != nil && !errors.Is(derr, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("%w; deleting consumer %s in its way: %w", err, name, derr)
		}
		if derr := s.js.DeleteConsumer(ctx, events.StreamAdvisories, name+consumer.LostSuffix); derr != nil &&
			!errors.Is(derr, jetstream.ErrConsumerNotFound) && !errors.Is(derr, jetstream.ErrStreamNotFound) {
			s.log.Warn("cannot delete the follower of a replaced consumer", "consumer", name+consumer.LostSuffix, "err", derr)
		}
		s.log.Info("deleted a consumer this instance's consumer replaces; its unsettled commands come through the new one", "consumer", name)
	}
	_, err = r.Ensure(ctx)
	return err
}
