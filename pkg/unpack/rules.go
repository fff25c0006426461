// Package unpack reads release packages (.tar.gz) under one set of rules:
// no absolute paths, no ".." escapes, no paths through a link, no symbolic
// links that resolve outside the release, no hard links, devices or fifos,
// and size and file-count limits. Inspect applies the rules without writing
// anything (precheck, before anything changes); Extract applies the very
// same rules while it writes (deploy). One implementation, so a package
// that passes precheck is one that deploy will extract.
//
// The rules are checked against an index of what the archive has made so
// far, not against the disk: Inspect has no disk, and Extract's writes go
// through an os.Root as well, so even a case the rules missed cannot write
// outside the release.
package unpack

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
)

// Errors, for errors.Is.
var (
	// ErrUnsafe is a package entry that would write outside its release,
	// link out of it, is of a kind a release must not hold, or a package
	// over a limit.
	ErrUnsafe = errors.New("unsafe package")
	// ErrBad is a package that is not a readable .tar.gz.
	ErrBad = errors.New("bad package")
)

// MarkerFile is the name deploy records a release's digest under, in the
// release's top directory: a package may not bring one of its own.
const MarkerFile = ".upshift-release"

// maxLinkHops bounds the links followed while resolving one link, as the
// kernel's own limit does.
const maxLinkHops = 40

// Stats say what a package holds.
type Stats struct {
	Entries int
	Bytes   int64
	Links   int
	// Stripped counts entries whose setuid, setgid or sticky bit is dropped.
	Stripped int
}

// kind of a name in the index.
type kind uint8

const (
	kindDir kind = iota + 1
	kindFile
	kindLink
)

type node struct {
	kind kind
	link string // a link's target
}

// checker applies the rules to one archive's entries in order, keeping the
// index of the tree they make.
type checker struct {
	limits Limits
	st     Stats
	tree   map[string]node // "" is the release itself
	links  []string
}

func newChecker(l Limits) *checker {
	return &checker{limits: l.withDefaults(), tree: map[string]node{"": {kind: kindDir}}}
}

// action is what an accepted entry asks of a writer.
type action struct {
	name    string
	replace bool // a file or link of that name exists and goes first
}

func unsafe(name, format string, args ...any) error {
	return fmt.Errorf("%w: %q: %s", ErrUnsafe, name, fmt.Sprintf(format, args...))
}

// entry checks one header and records it; an empty action name is the
// release directory itself (nothing to write).
func (c *checker) entry(hdr *tar.Header) (action, error) {
	c.st.Entries++
	if c.st.Entries > c.limits.MaxFiles {
		return action{}, fmt.Errorf("%w: more than %d entries", ErrUnsafe, c.limits.MaxFiles)
	}
	name, err := entryName(hdr.Name)
	if err != nil || name == "" {
		return action{}, err
	}
	if err := c.checkParents(name); err != nil {
		return action{}, err
	}
	if hdr.Mode&0o7000 != 0 {
		c.st.Stripped++
	}
	existing, exists := c.tree[name]
	switch hdr.Typeflag {
	case tar.TypeDir:
		if exists && existing.kind != kindDir {
			return action{}, unsafe(name, "a directory over a file or link")
		}
		c.mkdirAll(name)
		return action{name: name}, nil
	case tar.TypeReg:
		c.st.Bytes += hdr.Size
		if c.st.Bytes > int64(c.limits.MaxSize) {
			return action{}, fmt.Errorf("%w: more than %d bytes uncompressed", ErrUnsafe, int64(c.limits.MaxSize))
		}
		if exists && existing.kind == kindDir {
			return action{}, unsafe(name, "a file or link over a directory")
		}
		c.mkdirAll(path.Dir(name))
		c.tree[name] = node{kind: kindFile}
		return action{name: name, replace: exists}, nil
	case tar.TypeSymlink:
		if hdr.Linkname == "" || path.IsAbs(hdr.Linkname) {
			return action{}, unsafe(name, "link to %q, outside the release", hdr.Linkname)
		}
		if to := path.Join(path.Dir(name), hdr.Linkname); !filepath.IsLocal(to) {
			return action{}, unsafe(name, "link to %q, outside the release", hdr.Linkname)
		}
		if exists && existing.kind == kindDir {
			return action{}, unsafe(name, "a file or link over a directory")
		}
		c.mkdirAll(path.Dir(name))
		c.tree[name] = node{kind: kindLink, link: hdr.Linkname}
		c.st.Links++
		c.links = append(c.links, name)
		return action{name: name, replace: exists}, nil
	case tar.TypeLink:
		return action{}, unsafe(name, "hard link to %q", hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		return action{}, unsafe(name, "device node")
	case tar.TypeFifo:
		return action{}, unsafe(name, "fifo")
	}
	return action{}, unsafe(name, "unsupported entry type %q", hdr.Typeflag)
}

// Mode is the mode an entry is written with: the archive's permission bits,
// less setuid, setgid and sticky.
func mode(hdr *tar.Header) fs.FileMode { return fs.FileMode(hdr.Mode) & fs.ModePerm }

// entryName checks a name from the archive and returns it cleaned; "" is the
// release directory itself.
func entryName(raw string) (string, error) {
	if raw == "" {
		return "", unsafe(raw, "empty name")
	}
	if path.IsAbs(raw) {
		return "", unsafe(raw, "absolute path")
	}
	if !filepath.IsLocal(raw) {
		return "", unsafe(raw, "escapes the release")
	}
	name := path.Clean(raw)
	if name == "." {
		return "", nil
	}
	if name == MarkerFile {
		return "", unsafe(raw, "reserved for the release marker")
	}
	return name, nil
}

// checkParents refuses a path through a link (or a file): the simple rule
// that makes every other check hold, since links can then only be followed
// when resolving a link, which finish does.
func (c *checker) checkParents(name string) error {
	parts := strings.Split(name, "/")
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], "/")
		n, ok := c.tree[p]
		if !ok {
			return nil
		}
		if n.kind != kindDir {
			return unsafe(name, "path through %q, which is not a directory", p)
		}
	}
	return nil
}

func (c *checker) mkdirAll(dir string) {
	for dir != "." && dir != "" {
		if _, ok := c.tree[dir]; ok {
			return
		}
		c.tree[dir] = node{kind: kindDir}
		dir = path.Dir(dir)
	}
}

// finish checks every link against the final tree (an earlier link may send
// a later one's "a/.." out).
func (c *checker) finish() error {
	for _, name := range c.links {
		if n := c.tree[name]; n.kind == kindLink {
			if err := c.resolve(name, n.link); err != nil {
				return err
			}
		}
	}
	return nil
}

// resolve follows the link at name through the release, component by
// component and through other links, and refuses it if it ever leaves the
// release. Components that do not exist are taken as plain directories: the
// app may create them, and may then only create them inside.
func (c *checker) resolve(name, target string) error {
	dir := strings.Split(path.Dir(name), "/")
	if dir[0] == "." {
		dir = nil
	}
	pending := strings.Split(target, "/")
	for hops := 0; len(pending) > 0; {
		comp := pending[0]
		pending = pending[1:]
		switch comp {
		case "", ".":
			continue
		case "..":
			if len(dir) == 0 {
				return unsafe(name, "link to %q resolves outside the release", target)
			}
			dir = dir[:len(dir)-1]
			continue
		}
		p := strings.Join(append(dir[:len(dir):len(dir)], comp), "/")
		n, ok := c.tree[p]
		if !ok || n.kind != kindLink {
			dir = append(dir, comp)
			continue
		}
		if hops++; hops > maxLinkHops {
			return unsafe(name, "too many levels of links")
		}
		if path.IsAbs(n.link) {
			return unsafe(name, "link to %q goes through %q, which points outside the release", target, p)
		}
		pending = append(strings.Split(n.link, "/"), pending...)
	}
	return nil
}
