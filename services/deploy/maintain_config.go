package deploy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kylelemons/godebug/diff"
)

// Baseline is what config-baseline records of the configuration files and
// config-drift compares them with. It is kept under the target root, mode
// 0600: it holds the text of small text files, so that a drift can be shown
// as a diff, and configuration may hold secrets.
type Baseline struct {
	Format   int                     `json:"format"`
	Recorded time.Time               `json:"recorded"`
	Saga     string                  `json:"saga"`
	Paths    []string                `json:"paths"`
	Files    map[string]BaselineFile `json:"files"`
}

// BaselineFile is one configuration file as recorded.
type BaselineFile struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Mode   string `json:"mode"`
	// Text of a text file up to MaxBaselineText bytes, for the diff.
	Text *string `json:"text,omitempty"`
}

// MaxBaselineText is the largest text file whose content the baseline keeps.
const MaxBaselineText = 64 << 10

// DriftDiffFile, beside the baseline, holds the diff of the last
// config-drift run. The diff stays on the host: configuration may hold
// secrets, so the step's report says which files differ and by how many
// lines, never the lines themselves.
const DriftDiffFile = ".upshift-drift.diff"

// configFiles reads the configured files as they are now.
func (s *step) configFiles() (map[string]BaselineFile, error) {
	c := s.t.Maintenance.Config
	files := map[string]BaselineFile{}
	for _, p := range c.Paths {
		top := filepath.Join(s.t.Root, p)
		err := filepath.WalkDir(top, func(name string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) && name == top {
				return nil // a missing path is a removed file, if it was recorded
			}
			if err != nil {
				return err
			}
			if d.IsDir() || !d.Type().IsRegular() && d.Type()&fs.ModeSymlink == 0 {
				return nil
			}
			rel, _ := filepath.Rel(s.t.Root, name)
			rel = filepath.ToSlash(rel)
			var b []byte
			if d.Type()&fs.ModeSymlink != 0 {
				l, err := os.Readlink(name)
				if err != nil {
					return err
				}
				b = []byte("symlink -> " + l)
			} else if b, err = os.ReadFile(name); err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			f := BaselineFile{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b)), Mode: fmt.Sprintf("%04o", fi.Mode().Perm())}
			if len(b) <= MaxBaselineText && utf8.Valid(b) && !bytes.ContainsRune(b, 0) {
				t := string(b)
				f.Text = &t
			}
			files[rel] = f
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
	}
	return files, nil
}

func (s *step) baselinePath() string {
	return filepath.Join(s.t.Root, s.t.Maintenance.Config.Baseline)
}

// configBaseline records the configuration files as they are now as the
// baseline config-drift compares with: the way to accept a drift, through
// a saga, so that it is audited like any other change.
func (s *step) configBaseline(out map[string]string) error {
	c := s.t.Maintenance.Config
	if c == nil {
		return fmt.Errorf("%w: the target declares no configuration files (maintenance.config)", errUnconfigured)
	}
	files, err := s.configFiles()
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(Baseline{Format: 1, Recorded: time.Now().UTC(), Saga: s.cmd.Saga, Paths: c.Paths, Files: files}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.baselinePath(), b, 0o600); err != nil {
		return fmt.Errorf("record the baseline: %w", err)
	}
	s.add("config-baseline", true, fmt.Sprintf("recorded %d files of %s in %s", len(files), strings.Join(c.Paths, ", "), c.Baseline))
	out["baseline_files"] = fmt.Sprint(len(files))
	return nil
}

// configDrift compares the configuration files with the baseline and
// reports each file added, removed or changed (and by how many lines, for
// text); the diff itself goes to DriftDiffFile on the host. A drift is a
// finding, not a failure: the step succeeds and its report lines for the
// files that differ are marked not OK. No baseline is a failure.
func (s *step) configDrift(out map[string]string) error {
	c := s.t.Maintenance.Config
	if c == nil {
		return fmt.Errorf("%w: the target declares no configuration files (maintenance.config)", errUnconfigured)
	}
	raw, err := os.ReadFile(s.baselinePath())
	if errors.Is(err, fs.ErrNotExist) {
		return failed(ReasonNoBaseline, fmt.Errorf("no baseline at %s: record one with the maintenance action config-baseline", c.Baseline))
	}
	if err != nil {
		return err
	}
	var base Baseline
	if err := json.Unmarshal(raw, &base); err != nil {
		return fmt.Errorf("read the baseline %s: %w", c.Baseline, err)
	}
	now, err := s.configFiles()
	if err != nil {
		return err
	}
	var names []string
	for n := range base.Files {
		names = append(names, n)
	}
	for n := range now {
		if _, ok := base.Files[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var changed, added, removed int
	var diffs strings.Builder
	for _, n := range names {
		was, had := base.Files[n]
		is, has := now[n]
		switch {
		case !has:
			removed++
			s.add("config "+n, false, "removed since the baseline")
			diffs.WriteString(unified(n, text(was), ""))
		case !had:
			added++
			s.add("config "+n, false, "added since the baseline")
			diffs.WriteString(unified(n, "", text(is)))
		case was.SHA256 != is.SHA256 || was.Mode != is.Mode:
			changed++
			detail := fmt.Sprintf("changed: sha256 %.12s -> %.12s", was.SHA256, is.SHA256)
			if was.Mode != is.Mode {
				detail += fmt.Sprintf(", mode %s -> %s", was.Mode, is.Mode)
			}
			if was.Text != nil && is.Text != nil {
				d := unified(n, *was.Text, *is.Text)
				diffs.WriteString(d)
				plus, minus := countLines(d)
				detail += fmt.Sprintf(", %d lines added and %d removed", plus, minus)
			}
			s.add("config "+n, false, detail)
		}
	}
	summary := fmt.Sprintf("%d changed, %d added, %d removed of %d files since the baseline of %s (saga %s)",
		changed, added, removed, len(base.Files), base.Recorded.Format(time.RFC3339), base.Saga)
	out["drift"] = fmt.Sprintf("%d changed, %d added, %d removed", changed, added, removed)
	if changed+added+removed > 0 {
		p := filepath.Join(filepath.Dir(s.baselinePath()), DriftDiffFile)
		if err := writeFileAtomic(p, []byte(diffs.String()), 0o600); err != nil {
			return fmt.Errorf("write the diff: %w", err)
		}
		summary += "; the diff is in " + p
		out["drift_diff"] = p
	}
	s.add("config-drift", changed+added+removed == 0, summary)
	return nil
}

func text(f BaselineFile) string {
	if f.Text == nil {
		return ""
	}
	return *f.Text
}

func countLines(d string) (plus, minus int) {
	for l := range strings.SplitSeq(d, "\n") {
		switch {
		case strings.HasPrefix(l, "+++"), strings.HasPrefix(l, "---"):
		case strings.HasPrefix(l, "+"):
			plus++
		case strings.HasPrefix(l, "-"):
			minus++
		}
	}
	return plus, minus
}

// unified is a unified diff of a and b with three lines of context.
func unified(name, a, b string) string {
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	}
	type op struct {
		kind byte
		line string
		a, b int // lines of a and b before this one
	}
	var ops []op
	na, nb := 0, 0
	for _, c := range diff.DiffChunks(split(a), split(b)) {
		for _, l := range c.Deleted {
			ops = append(ops, op{'-', l, na, nb})
			na++
		}
		for _, l := range c.Added {
			ops = append(ops, op{'+', l, na, nb})
			nb++
		}
		for _, l := range c.Equal {
			ops = append(ops, op{' ', l, na, nb})
			na, nb = na+1, nb+1
		}
	}
	const context = 3
	var out strings.Builder
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		start := max(0, i-context)
		end := i
		for j := i; j < len(ops) && j <= end+2*context; j++ {
			if ops[j].kind != ' ' {
				end = j
			}
		}
		stop := min(len(ops), end+context+1)
		var la, lb int
		for _, o := range ops[start:stop] {
			if o.kind != '+' {
				la++
			}
			if o.kind != '-' {
				lb++
			}
		}
		if out.Len() == 0 {
			fmt.Fprintf(&out, "--- baseline/%s\n+++ now/%s\n", name, name)
		}
		fmt.Fprintf(&out, "@@ -%d,%d +%d,%d @@\n", ops[start].a+1, la, ops[start].b+1, lb)
		for _, o := range ops[start:stop] {
			out.WriteByte(o.kind)
			out.WriteString(o.line)
			out.WriteByte('\n')
		}
		i = stop
	}
	return out.String()
}

// writeFileAtomic writes b to p through a synced temporary file and a rename.
func writeFileAtomic(p string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(p), ".upshift-tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}
