package notify

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/service"
)

// Settings of an upshift-notify process: flags, or UPSHIFT_* variables.
// The channels and the routes are in the routes file; their secrets are in
// files or environment variables it names.
type Settings struct {
	// RoutesFile defines the channels and the routes. Empty: the log
	// channel alone, which gets every notice.
	RoutesFile string
	// Retry is the back-off between deliveries of a notice a channel failed.
	Retry Backoff
	// Consumer tunes the router's and the deliverer's consumers.
	Consumer consumer.Config
	// LookupEnv reads the environment variables secrets are named by;
	// nil: the process's.
	LookupEnv LookupEnv
}

// Register adds the process's own flags to fs.
func (s *Settings) Register(fs *flag.FlagSet) {
	fs.StringVar(&s.RoutesFile, "routes", s.RoutesFile, "YAML file of the channels and of which notices go to which, per team, kind and severity (see examples/notify.yaml); empty: every notice to the log")
	if s.Retry.Base == 0 {
		s.Retry.Base = time.Second
	}
	if s.Retry.Max == 0 {
		s.Retry.Max = 5 * time.Minute
	}
	fs.DurationVar(&s.Retry.Base, "retry-base", s.Retry.Base, "delay before a notice a channel failed is tried again; doubled for each later try, with jitter")
	fs.DurationVar(&s.Retry.Max, "retry-max", s.Retry.Max, "longest delay between two tries of a notice")
	s.Consumer.Register(fs)
}

// channels are the channels the settings configure, and the routes among
// them: without a routes file, the log channel and every notice to it.
func (s Settings) channels(log *slog.Logger) ([]Channel, Router, error) {
	logCh := NewLogChannel(log.With("channel", logChannelName))
	if s.RoutesFile == "" {
		return []Channel{logCh}, Router{}, nil
	}
	f, err := LoadRoutes(s.RoutesFile)
	if err != nil {
		return nil, Router{}, err
	}
	env := s.LookupEnv
	if env == nil {
		env = os.LookupEnv
	}
	chs, err := f.Build(env)
	if err != nil {
		return nil, Router{}, err
	}
	return append([]Channel{logCh}, chs...), f.Router(), nil
}

// Build makes the file's channels, in the order of their names, reading
// their secrets. Every problem is named, at once; none quotes a secret.
func (f RoutesFile) Build(env LookupEnv) ([]Channel, error) {
	names := make([]string, 0, len(f.Channels))
	for n := range f.Channels {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Channel
	var errs []error
	for _, name := range names {
		ch, err := f.Channels[name].build(name, env)
		if err != nil {
			errs = append(errs, fmt.Errorf("channel %s: %w", name, err))
			continue
		}
		out = append(out, ch)
	}
	return out, errors.Join(errs...)
}

func (c ChannelSpec) build(name string, env LookupEnv) (Channel, error) {
	switch {
	case c.Webhook != nil:
		secret, err := c.Webhook.Secret.resolve(env)
		if err != nil {
			return nil, fmt.Errorf("secret: %w", err)
		}
		return NewWebhook(name, c.Webhook.URL, secret, c.Webhook.Timeout.Duration, nil)
	case c.Slack != nil:
		url, err := c.Slack.URL.resolve(env)
		if err != nil {
			return nil, fmt.Errorf("url: %w", err)
		}
		return NewSlack(name, url, c.Slack.Timeout.Duration, nil)
	case c.Email != nil:
		e := c.Email
		cfg := EmailConfig{Server: e.Server, Username: e.Username, From: e.From, To: e.To, Timeout: e.Timeout.Duration}
		if e.Password.set() {
			p, err := e.Password.resolve(env)
			if err != nil {
				return nil, fmt.Errorf("password: %w", err)
			}
			cfg.Password = p
		}
		pool, err := loadCAs(e.CAFile)
		if err != nil {
			return nil, fmt.Errorf("caFile: %w", err)
		}
		cfg.RootCAs = pool
		return NewEmail(name, cfg)
	}
	return nil, errors.New("no kind of channel set")
}

// Program is the notify process, built from its settings: its main runs it,
// and `upshift dev` and the tests build their notify service with it.
func Program(s *Settings) service.Program {
	return service.Program{Name: "notify", OpsAddr: ":9106", Flags: s.Register,
		Build: func(_ context.Context, env service.Env) ([]service.Component, func(), error) {
			channels, routes, err := s.channels(env.Log)
			if err != nil {
				return nil, nil, err
			}
			return []service.Component{New(env.JS, Config{Instance: env.Instance, Channels: channels, Routes: routes,
				Retry: s.Retry, Consumer: s.Consumer, Streams: env.Streams()}, env.Log, env.Registry)}, nil, nil
		}}
}
