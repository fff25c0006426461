// Package streams declares upshift's JetStream streams, consumers and
// key-value buckets, and creates or updates them idempotently: every service
// provisions what it needs at start-up, so start order does not matter.
package streams

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/events"
)

// Key-value buckets.
const (
	// SagasBucket holds saga state when the coordinator uses the KV store.
	SagasBucket = "upshift_sagas"
	// SagasArchiveBucket holds the KV store's finished sagas, for a
	// retention of their own, out of the way of the live ones.
	SagasArchiveBucket = "upshift_sagas_archive"
	// DoneBucket holds what each phase service did, per command id, so a
	// redelivered command is answered without being executed again, and
	// what notify delivered, per notice and channel.
	DoneBucket = "upshift_done"
	// TargetsBucket is the registry of targets (package fleet): one key per
	// target, service and instance, refreshed by a heartbeat, gone with
	// its process.
	TargetsBucket = "upshift_targets"
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
	// TargetsTTL is how long an entry of TargetsBucket lives without a
	// heartbeat: a process that died is taken for serving its targets at
	// most that long. Every process must use one value, or each start-up
	// would reconfigure the bucket under the others. Default 30s.
	TargetsTTL time.Duration
}

// Defaults for Config.
const (
	DefaultDuplicates = 10 * time.Minute
	DefaultTargetsTTL = 30 * time.Second
	day               = 24 * time.Hour
)

func (c Config) withDefaults() Config {
	if c.Replicas < 1 {
		c.Replicas = 1
	}
	if c.Duplicates <= 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.TargetsTTL <= 0 {
		c.TargetsTTL = DefaultTargetsTTL
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
	case events.StreamAdvisories:
		// A work queue: an advisory acted on is gone, so a follower created
		// again does not dead-letter its messages a second time.
		sc.Subjects, sc.MaxAge = events.AdvisorySubjects, 30*day
		sc.Retention = jetstream.WorkQueuePolicy
		sc.Description = "the server's advisories of messages whose last delivery was never settled, for their consumers to dead-letter"
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
	events.StreamNotify, events.StreamTimers, events.StreamDeadLetter, events.StreamAdvisories}

// Ensure creates the named streams, or updates one whose configuration is
// not what upshift declares. A stream already as declared is left alone:
// every service ensures the streams it uses at start-up, and an update the
// server need not make is one it may make under another client's consumer
// creation (nats-server 2.15 updates the file store's configuration without
// the lock its consumer creation reads it under; the race detector sees it).
func Ensure(ctx context.Context, js jetstream.JetStream, c Config, names ...string) error {
	for _, n := range names {
		sc, err := Stream(n, c)
		if err != nil {
			return err
		}
		if err := whilePlacing(ctx, func(ctx context.Context) error { return ensureStream(ctx, js, sc) }); err != nil {
			return fmt.Errorf("ensure stream %s: %w", n, err)
		}
	}
	return nil
}

func ensureStream(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) error {
	s, err := js.Stream(ctx, sc.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, sc)
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return err
		}
		// Another service created it first, maybe with another version's
		// configuration: look at it as if it had been there.
		s, err = js.Stream(ctx, sc.Name)
	}
	if err != nil {
		return err
	}
	if Declared(s.CachedInfo().Config, sc) {
		return nil
	}
	_, err = js.UpdateStream(ctx, sc)
	return err
}

// PlacementWait bounds how long Ensure and EnsureBucket try again while a
// JetStream cluster cannot place replicas yet: its nodes are still finding
// each other, or its meta leader is being elected (its API does not answer
// meanwhile). A cluster that stays unable to (fewer nodes than replicas)
// fails them after it.
const PlacementWait = 30 * time.Second

// attemptWait bounds one attempt: a request that no meta leader answers
// is given up and made again.
const attemptWait = 5 * time.Second

// whilePlacing calls try until it succeeds, fails otherwise than a forming
// cluster does, PlacementWait has passed or ctx ends; then it returns
// try's last error.
func whilePlacing(ctx context.Context, try func(context.Context) error) error {
	deadline := time.Now().Add(PlacementWait)
	wait := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, attemptWait)
		err := try(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !forming(err) || time.Now().Add(wait).After(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// The JetStream API's error codes of a cluster not ready to place replicas
// (nats-server's JSClusterNoPeersErrF, JSClusterNotAvailErr,
// JSClusterNotLeaderErr).
const (
	errNoPeers   jetstream.ErrorCode = 10005
	errNotAvail  jetstream.ErrorCode = 10008
	errNotLeader jetstream.ErrorCode = 10009
)

// forming says whether err is what a cluster still forming answers: one of
// those codes, or no answer in time.
func forming(err error) bool {
	var later stillPlacing
	if errors.As(err, &later) {
		return true
	}
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case errNoPeers, errNotAvail, errNotLeader:
			return true
		}
		return false
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
}

// Declared reports whether a stream's configuration, as the server reports
// it with its defaults filled in, has every setting upshift declares in want.
func Declared(have, want jetstream.StreamConfig) bool {
	return have.Name == want.Name &&
		slices.Equal(have.Subjects, want.Subjects) &&
		have.Description == want.Description &&
		have.Retention == want.Retention &&
		have.Storage == want.Storage &&
		have.Replicas == want.Replicas &&
		have.Duplicates == want.Duplicates &&
		have.Discard == want.Discard &&
		have.MaxAge == want.MaxAge &&
		have.AllowMsgSchedules == want.AllowMsgSchedules
}

// EnsureBucket creates a key-value bucket, or updates one whose TTL,
// history, replicas or storage differ; like Ensure, it leaves a bucket as
// declared alone. ttl bounds how long a key lives (0: forever). A bucket
// of more than one replica is read through its leader (readFromLeader).
func EnsureBucket(ctx context.Context, js jetstream.JetStream, c Config, bucket string, ttl time.Duration) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := whilePlacing(ctx, func(ctx context.Context) (err error) {
		kv, err = ensureBucket(ctx, js, c, bucket, ttl)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ensure bucket %s: %w", bucket, err)
	}
	return kv, nil
}

// stillPlacing is a bucket's stream not found right after the bucket was
// found or created: a three-node cluster starting answered so once (a soak
// test's start), the stream not yet known to the server asked.
type stillPlacing struct{ error }

func (e stillPlacing) Unwrap() error { return e.error }

func notFoundYet(err error) error {
	var api *jetstream.APIError
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.As(err, &api) && api.ErrorCode == jetstream.JSErrCodeStreamNotFound {
		return stillPlacing{err}
	}
	return err
}

func ensureBucket(ctx context.Context, js jetstream.JetStream, c Config, bucket string, ttl time.Duration) (kv jetstream.KeyValue, err error) {
	c = c.withDefaults()
	want := jetstream.KeyValueConfig{Bucket: bucket, Replicas: c.Replicas, Storage: c.Storage, TTL: ttl, History: 1}
	kv, err = js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, want)
		if errors.Is(err, jetstream.ErrBucketExists) {
			// Another service created it first, with another configuration.
			kv, err = js.KeyValue(ctx, bucket)
		}
	}
	if err != nil {
		return nil, err
	}
	// Found or created: from here, its stream not found is a cluster
	// still placing it.
	defer func() { err = notFoundYet(err) }()
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, err
	}
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); !ok || !sameBucket(bs.Config(), want) {
		if kv, err = js.UpdateKeyValue(ctx, want); err != nil {
			return nil, err
		}
	}
	if c.Replicas < 2 {
		return kv, nil
	}
	return readFromLeader(ctx, js, bucket)
}

func sameBucket(have, want jetstream.KeyValueConfig) bool {
	return have.TTL == want.TTL && have.History == want.History && have.Replicas == want.Replicas && have.Storage == want.Storage
}

// readFromLeader turns off the direct gets of a replicated bucket and opens
// it again. Any replica answers a direct get, a follower from what it has
// applied so far: a key read right after its write could be missing or
// old. In the soak on three nodes the coordinator found 13 sagas of 180
// missing right after creating them, each tried again a second later, and
// lost updates to conflicts; the p99 from request to end was 11 to 30 s,
// 0.5 s once reads went through the leader, which sees every acknowledged
// write.
// The bucket is opened again after the check, so that its handle reads as
// the bucket is now, whoever changed it.
func readFromLeader(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	st, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return nil, err
	}
	if cfg := st.CachedInfo().Config; cfg.AllowDirect {
		cfg.AllowDirect = false
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return nil, err
		}
	}
	return js.KeyValue(ctx, bucket)
}

// EnsureTargets creates or updates the registry of targets, with its TTL;
// it returns the TTL, whose third is the heartbeat.
func EnsureTargets(ctx context.Context, js jetstream.JetStream, c Config) (jetstream.KeyValue, time.Duration, error) {
	c = c.withDefaults()
	kv, err := EnsureBucket(ctx, js, c, TargetsBucket, c.TargetsTTL)
	return kv, c.TargetsTTL, err
}
