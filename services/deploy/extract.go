package deploy

import (
	"context"
	"fmt"
	"os"

	"github.com/upshift/upshift/pkg/unpack"
)

// extract unpacks the .tar.gz at pkg, under package unpack's rules (the
// ones precheck inspected it with), into a new temporary directory inside
// releases and returns it; the caller syncs it and renames it into place.
// On any error nothing is left behind.
func extract(ctx context.Context, pkg, releases, version string, limits unpack.Limits) (dir string, st unpack.Stats, err error) {
	tmp, err := os.MkdirTemp(releases, ".tmp-"+version+"-")
	if err != nil {
		return "", st, fmt.Errorf("extract: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if st, err = unpack.Extract(ctx, pkg, tmp, limits); err != nil {
		return "", st, err
	}
	// MkdirTemp made it private; a release is read by the app's own user.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", st, fmt.Errorf("extract: %w", err)
	}
	return tmp, st, nil
}
