package unpack

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Sync makes everything written under dir durable: with one syncfs of its
// file system rather than an fsync per file, which for a release of many
// small files is most of the time an extraction takes. It syncs the rest of
// that file system too, which costs the other writers nothing they would
// not have paid at their next sync.
func Sync(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
