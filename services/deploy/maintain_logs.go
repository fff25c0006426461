package deploy

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/upshift/upshift/pkg/hooks"
	"github.com/upshift/upshift/pkg/targets"
)

// archiveLogs compresses (gzip) and moves the log files older than the
// configured age from each log directory to the archive, under the name of
// the directory they came from, then checks that logging still writes (see
// targets.LogCheck). The live log is never archived. Each file is written
// to the archive, synced and renamed into place before its original is
// removed, so a crash leaves it in one place or both, never in neither; a
// file that is in both when the action runs again is recognised by its
// content and only removed from the log directory.
func (s *step) archiveLogs(ctx context.Context, out map[string]string) error {
	l := s.t.Maintenance.Logs
	if l == nil {
		return fmt.Errorf("%w: the target declares no logs (maintenance.logs)", errUnconfigured)
	}
	cutoff := time.Now().Add(-time.Duration(l.OlderThanDays) * 24 * time.Hour)
	live := filepath.Join(s.t.Root, l.Check.File)
	start := time.Now()
	var files int
	var before, after int64
	for _, dir := range l.Dirs {
		src := filepath.Join(s.t.Root, dir)
		dst := filepath.Join(s.t.Root, l.Archive, dir)
		des, err := os.ReadDir(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", dir, err)
		}
		for _, de := range des {
			p := filepath.Join(src, de.Name())
			if !de.Type().IsRegular() || p == live || strings.HasPrefix(de.Name(), ".") {
				continue
			}
			fi, err := de.Info()
			if err != nil {
				return fmt.Errorf("inspect %s: %w", p, err)
			}
			if !fi.ModTime().Before(cutoff) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			s.stage("archiving " + filepath.Join(dir, de.Name()))
			n, err := archiveLog(p, dst, fi)
			if err != nil {
				return fmt.Errorf("archive %s: %w", filepath.Join(dir, de.Name()), err)
			}
			files++
			before += fi.Size()
			after += n
		}
	}
	took := time.Since(start).Round(time.Millisecond)
	detail := fmt.Sprintf("%d files older than %d days from %s to %s (%s -> %s) in %s",
		files, l.OlderThanDays, strings.Join(l.Dirs, ", "), l.Archive, targets.Bytes(before), targets.Bytes(after), took)
	s.add("archive-logs", true, detail)
	out["archived_files"] = fmt.Sprint(files)
	return s.checkLogging(ctx, live, l.Check)
}

// archiveLog moves the file p (described by fi) into dir, compressed unless
// it already is, and returns the archived size.
func archiveLog(p, dir string, fi fs.FileInfo) (int64, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return 0, err
	}
	name := filepath.Base(p)
	compress := !strings.HasSuffix(name, ".gz")
	if compress {
		name += ".gz"
	}
	want, err := contentSum(p, false)
	if err != nil {
		return 0, err
	}
	dst := filepath.Join(dir, name)
	for i := 1; ; i++ {
		have, err := contentSum(dst, compress)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err == nil && bytes.Equal(have, want) {
			// Archived before, by a run that stopped before removing it.
			st, err := os.Stat(dst)
			if err != nil {
				return 0, err
			}
			return st.Size(), removeSynced(p)
		}
		// Another file of that name is archived already: keep both.
		dst = filepath.Join(dir, fmt.Sprintf("%s.%d.gz", strings.TrimSuffix(name, ".gz"), i))
	}
	tmp := filepath.Join(dir, ".upshift-archive-"+rand.Text())
	n, err := writeArchived(p, tmp, compress, fi.ModTime())
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return 0, err
	}
	if err := syncDir(dir); err != nil {
		return 0, err
	}
	return n, removeSynced(p)
}

func writeArchived(src, tmp string, compress bool, mtime time.Time) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if compress {
		gz := gzip.NewWriter(f)
		gz.Name, gz.ModTime = filepath.Base(src), mtime
		if _, err := io.Copy(gz, in); err != nil {
			return 0, err
		}
		if err := gz.Close(); err != nil {
			return 0, err
		}
	} else if _, err := io.Copy(f, in); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return st.Size(), os.Chtimes(tmp, mtime, mtime)
}

// contentSum is the sha256 of a file's content, gunzipped first if asked.
func contentSum(p string, gunzip bool) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if gunzip {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, err
		}
		r = gz
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

func removeSynced(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(filepath.Dir(p))
}

// checkLogging sees the live log written to within the check's time: its
// size or modification time moves after the check's command runs or its
// URL is requested (or, with neither, on the application's own).
func (s *step) checkLogging(ctx context.Context, live string, c targets.LogCheck) error {
	s.stage("checking that " + c.File + " is still written to")
	before, _ := os.Stat(live)
	start := time.Now()
	switch {
	case c.Command != nil:
		res, err := hooks.Run(ctx, c.Command.Command, s.t.Root, s.t.HookEnv(map[string]string{"UPSHIFT_SAGA": s.cmd.Saga}), c.Command.Timeout.Duration)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return failed(ReasonLoggingStopped, fmt.Errorf("the logging check's command: %w (%s)", err, outputTail(res.Output)))
		}
	case c.URL != "":
		rctx, cancel := context.WithTimeout(ctx, c.Within.Duration)
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, c.URL, nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return failed(ReasonLoggingStopped, fmt.Errorf("the logging check's request: %w", err))
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	deadline := start.Add(c.Within.Duration)
	for {
		if now, err := os.Stat(live); err == nil && (before == nil || now.Size() != before.Size() || !now.ModTime().Equal(before.ModTime())) {
			s.add("logging", true, fmt.Sprintf("%s written to %s after the check began", c.File, time.Since(start).Round(time.Millisecond)))
			return nil
		}
		if time.Now().After(deadline) {
			return failed(ReasonLoggingStopped, fmt.Errorf("%s was not written to within %s of the check: logging may have stopped", c.File, c.Within.Duration))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
