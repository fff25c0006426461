package backup_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase/phasetest"
	"github.com/upshift/upshift/services/backup"
)

func TestExecutorContract(t *testing.T) {
	phasetest.Run(t, func(t *testing.T) phasetest.Target {
		h := newHost(t)
		return phasetest.Target{Executor: h.exec,
			Commands: []events.Command{command(events.ActionArchive, 1), command(events.ActionRestore, 1)},
			// The target's tree, and that a complete backup is there.
			State: func(t *testing.T) string {
				_, err := os.Stat(filepath.Join(h.backupDir(), backup.ManifestFile))
				return h.listing() + fmt.Sprintf("\nmanifest present: %v", err == nil)
			}}
	})
}
