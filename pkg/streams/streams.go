// Package streams declares upshift's JetStream streams, consumers and
// key-value buckets, and creates or updates them idempotently: every service
// provisions what it needs at start-up, so start order does not matter.
package streams

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/events"
)

// Key-value buckets.
const (
	// SagasBucket holds saga state when the coordinator uses the KV store.
	SagasBucket = "upshift_sagas"
	// DoneBucket holds what each phase service did, per command id, so a
	// redelivered command is answered without being executed again, and
	// what notify delivered, per notice and channel.
	DoneBucket = "upshift_done"
)

// DoneTTL is how long DoneBucket remembers. One value for every user of the
// bucket, or each start-up would reconfigure it under the others.
const DoneTTL = 7 * 24 * time.Hour

// Config sets what differs between a laptop and a cluster.
type Config struct {
	// Replicas of every stream and bucket: 1 embedded, 3 in a cluster.
	Replicas int
	// Duplicates is the de-duplication window for Nats-Msg-Id.
	Duplicates time.Duration
	// Storage is file (default) or memory.
	Storage jetstream.StorageType
}

// Defaults for Config.
const (
	DefaultDuplicates = 10 * time.Minute
	day               = 24 * time.Hour
)

func (c Config) withDefaults() Config {
	if c.Replicas < 1 {
		c.Replicas = 1
	}
	if c.Duplicates <= 0 {
		c.Duplicates = DefaultDuplicates
	}
	return c
}

// Stream returns the configuration of one of upshift's streams.
func Stream(name string, c Config) (jetstream.StreamConfig, error) {
	c = c.withDefaults()
	sc := jetstream.StreamConfig{
		Name:       name,
		Retention:  jetstream.LimitsPolicy,
		Storage:    c.Storage,
		Replicas:   c.Replicas,
		Duplicates: c.Duplicates,
		Discard:    jetstream.DiscardOld,
	}
	switch name {
	case events.StreamRequests:
		sc.Subjects, sc.MaxAge = events.RequestSubjects, 90*day
		sc.Description = "upgrade and maintenance requests, and operators' decisions"
	case events.StreamCommands:
		sc.Subjects, sc.MaxAge = events.CommandSubjects, 30*day
		sc.Retention = jetstream.WorkQueuePolicy
		sc.Description = "commands from the coordinator to the phase services"
	case events.StreamEvents:
		sc.Subjects, sc.MaxAge = events.EventSubjects, 365*day
		sc.Description = "what happened: phase reports and the coordinator's decisions; the audit log"
	case events.StreamNotify:
		sc.Subjects, sc.MaxAge = events.NotifySubjects, 30*day
		sc.Description = "notices for teams"
	case events.StreamTimers:
		// Longer than any wait a saga may ask for (a window a year ahead):
		// a schedule removed by its age would never fire.
		sc.Subjects, sc.MaxAge = events.TimerSubjects, 400*day
		sc.AllowMsgSchedules = true
		sc.Description = "saga deadlines, held by the message scheduler"
	case events.StreamDeadLetter:
		sc.Subjects, sc.MaxAge = events.DeadLetterSubjects, 90*day
		sc.Description = "messages a consumer terminated, with the reason"
	case events.StreamAudit:
		sc.Subjects, sc.MaxAge = events.AuditSubjects, 365*day
		sc.Description = "what the coordinator saw and emitted, per saga (KV store only)"
	default:
		return sc, fmt.Errorf("unknown stream %q", name)
	}
	if sc.Duplicates > sc.MaxAge {
		sc.Duplicates = sc.MaxAge
	}
	return sc, nil
}

// All lists every stream.
var All = []string{events.StreamRequests, events.StreamCommands, events.StreamEvents,
	events.StreamNotify, events.StreamTimers, events.StreamDeadLetter}

// Ensure creates or updates the named streams.
func Ensure(ctx context.Context, js jetstream.JetStream, c Config, names ...string) error {
	for _, n := range names {
		sc, err := Stream(n, c)
		if err != nil {
			return err
		}
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("ensure stream %s: %w", n, err)
		}
	}
	return nil
}

// EnsureBucket creates or updates a key-value bucket. ttl bounds how long a
// key lives (0: forever).
func EnsureBucket(ctx context.Context, js jetstream.JetStream, c Config, bucket string, ttl time.Duration) (jetstream.KeyValue, error) {
	c = c.withDefaults()
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, Replicas: c.Replicas, Storage: c.Storage, TTL: ttl, History: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure bucket %s: %w", bucket, err)
	}
	return kv, nil
}
