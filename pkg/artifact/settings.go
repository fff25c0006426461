package artifact

import (
	"errors"
	"flag"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/unpack"
)

// Settings are the flags of a service that stages packages.
type Settings struct {
	// Dir is where verified packages are staged.
	Dir string
	// Sources are the URL prefixes packages may come from: required.
	Sources []string
	// Limits bound what a package may unpack to: precheck inspects a
	// package with them, deploy extracts it with them.
	Limits unpack.Limits
}

// Register adds the settings' flags to fs, defaulting to s's values.
func (s *Settings) Register(fs *flag.FlagSet) {
	if s.Dir == "" {
		s.Dir = "/var/lib/upshift/artifacts"
	}
	fs.StringVar(&s.Dir, "artifact-dir", s.Dir, "where verified packages are staged")
	service.ListVar(fs, &s.Sources, "artifact-sources", s.Sources,
		"required: comma-separated URL prefixes packages (and their signatures) may come from, e.g. "+
			"https://artifacts.example.com/releases/,file:///srv/packages/,objectstore://releases/")
	s.Limits.Register(fs)
}

// ErrNoSources is a service started without saying where packages may come
// from.
var ErrNoSources = errors.New("--artifact-sources (UPSHIFT_ARTIFACT_SOURCES) is required: the URL prefixes packages may come from")

// Open returns the store the settings describe; js reads objectstore://
// artifacts.
func (s Settings) Open(js jetstream.JetStream) (*Store, error) {
	if len(s.Sources) == 0 {
		return nil, ErrNoSources
	}
	return &Store{Dir: s.Dir, Sources: s.Sources, JS: js}, nil
}
