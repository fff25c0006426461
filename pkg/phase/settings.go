package phase

import (
	"flag"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/targets"
)

// Settings are what every phase service's operator sets: the targets it
// serves and how its consumers behave. Each service embeds them in its own
// settings and registers them with its flags.
type Settings struct {
	// TargetsFile lists the targets this instance serves.
	TargetsFile string
	// Targets, when set, is served instead of TargetsFile's: `upshift dev`
	// and tests build it in code.
	Targets *targets.Registry
	// Consumer tunes the per-target consumers.
	Consumer consumer.Config
}

// Register adds the settings' flags to fs.
func (s *Settings) Register(fs *flag.FlagSet) {
	if s.TargetsFile == "" {
		s.TargetsFile = "/etc/upshift/targets.yaml"
	}
	fs.StringVar(&s.TargetsFile, "targets", s.TargetsFile, "the targets this instance serves")
	s.Consumer.Register(fs)
}

// Registry returns the targets to serve.
func (s Settings) Registry() (*targets.Registry, error) {
	if s.Targets != nil {
		return s.Targets, nil
	}
	return targets.Load(s.TargetsFile)
}
