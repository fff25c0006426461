package pgdump

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// Verify checks the dump in file against d: its size and digest first,
// then pg_restore lists its entries and reads every one of them (to
// nowhere), so a dump that pg_restore could not restore fails here, not
// during a roll-back. It returns the number of entries listed.
func (t Tools) Verify(ctx context.Context, file string, d *Dump) (int, error) {
	if err := Digest(file, d); err != nil {
		return 0, err
	}
	bin, err := t.bin("pg_restore")
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, bin, "--list", file)
	cmd.Env = t.base()
	var stderr tail
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("pg_restore --list: %w", err)
	}
	entries := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, ";") {
			entries++
		}
	}
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("%w: pg_restore --list: %w: %s", ErrCorrupt, err, stderr.String())
	}
	// --list reads only the table of contents; a script restore to nowhere
	// reads and decompresses every data block.
	cmd = exec.CommandContext(ctx, bin, "--file=/dev/null", file)
	cmd.Env = t.base()
	stderr = tail{}
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("%w: pg_restore cannot read all of it: %w: %s", ErrCorrupt, err, stderr.String())
	}
	return entries, nil
}

// Digest checks the dump's size and sha256 against d's.
func Digest(file string, d *Dump) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("%w: read %s: %w", ErrCorrupt, file, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != d.SHA256 || n != d.Size {
		return fmt.Errorf("%w: %s does not match its sha256 (%d bytes, recorded %d)", ErrCorrupt, d.File, n, d.Size)
	}
	return nil
}
