package unpack

import (
	"flag"

	"github.com/upshift/upshift/pkg/targets"
)

// Default limits of a release.
const (
	DefaultMaxSize  = 4 << 30
	DefaultMaxFiles = 100_000
)

// Limits bound what a package may unpack to. Precheck and deploy take them
// from the same flags, so a package precheck passes is one deploy accepts.
type Limits struct {
	// MaxSize bounds the uncompressed size. Default 4 GiB.
	MaxSize targets.Bytes
	// MaxFiles bounds the entries. Default 100,000.
	MaxFiles int
}

func (l Limits) withDefaults() Limits {
	if l.MaxSize <= 0 {
		l.MaxSize = DefaultMaxSize
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	return l
}

// Register adds the limits' flags to fs, defaulting to l's values.
func (l *Limits) Register(fs *flag.FlagSet) {
	*l = l.withDefaults()
	fs.Var(&l.MaxSize, "package-max-size", "largest uncompressed size of a release package, e.g. 4GiB")
	fs.IntVar(&l.MaxFiles, "package-max-files", l.MaxFiles, "most entries a release package may hold")
}
