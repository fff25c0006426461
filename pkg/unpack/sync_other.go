//go:build !linux

package unpack

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Sync makes everything written under dir durable: without syncfs, one
// walk at the end that fsyncs every file and directory.
func Sync(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
		defer f.Close()
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
		return nil
	})
}
