package deploy_test

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/services/deploy"
)

// handMade writes entries under dir as a person installing by hand would.
func handMade(t *testing.T, dir string, entries []entry) {
	t.Helper()
	for _, e := range entries {
		p := filepath.Join(dir, e.name)
		switch e.typ {
		case tar.TypeDir:
			must(t, os.MkdirAll(p, 0o755))
		case tar.TypeSymlink:
			must(t, os.Symlink(e.link, p))
		case tar.TypeReg:
			must(t, os.MkdirAll(filepath.Dir(p), 0o755))
			must(t, os.WriteFile(p, []byte(e.body), os.FileMode(e.mode)))
		}
	}
}

// handInstalled puts release(v) in place by hand, current included.
func (h *host) handInstalled(v string, entries []entry) {
	h.t.Helper()
	handMade(h.t, filepath.Join(h.root, "releases", v), entries)
	must(h.t, os.Symlink(filepath.Join("releases", v), filepath.Join(h.root, "current")))
}

func (h *host) adopt(o deploy.AdoptOptions) (deploy.Adopted, error) {
	tgt, err := h.exec.Targets.Get("web-1")
	must(h.t, err)
	return deploy.Adopt(context.Background(), tgt, o)
}

func TestAnAdoptedReleaseIsUpgradedFromRolledBackToAndInstalledAgain(t *testing.T) {
	t.Parallel()
	h := newHost(t, 0)
	h.handInstalled("1.0", release("1.0"))

	// Before it is adopted, a request that brings 1.0 back conflicts with it.
	h.installedOver("1.0", "1.1")
	if out := h.apply("1.1", "1.0"); out.Reason != deploy.ReasonReleaseConflict || !strings.Contains(out.Error, "upshift adopt web-1 1.0") {
		t.Fatalf("before adopt: %+v", out)
	}
	must(t, os.Remove(filepath.Join(h.root, "current")))
	must(t, os.Symlink("releases/1.0", filepath.Join(h.root, "current")))

	res, err := h.adopt(deploy.AdoptOptions{Version: "1.0"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Marker.Adopted || !res.Marker.Good || !strings.HasPrefix(res.Marker.Content, "sha256:") || res.Marker.Digest != "" ||
		res.Current != "1.0" || res.Switched || res.Already {
		t.Fatalf("adopted %+v", res)
	}
	if again, err := h.adopt(deploy.AdoptOptions{Version: "1.0"}); err != nil || !again.Already {
		t.Fatalf("adopt again: %+v, %v", again, err)
	}
	if h.calls() != nil {
		t.Fatal("adopt ran a hook")
	}

	if out := h.apply("1.0", "1.1"); out.Failed {
		t.Fatalf("upgrade: %+v", out)
	}
	if out := h.rollback("1.0", "1.1"); out.Failed || h.current() != "releases/1.0" {
		t.Fatalf("rollback: %+v, current -> %s", out, h.current())
	}
	if out := h.apply("1.0", "1.1"); out.Failed {
		t.Fatalf("upgrade again: %+v", out)
	}
	// Back to 1.0 with its package: the same files, so the same release.
	url, digest := h.pack("app-1.0", release("1.0"))
	out, _ := h.run(command(events.ActionApply, "1.1", "1.0", url, digest))
	if out.Failed || h.current() != "releases/1.0" || !strings.Contains(line(out.Report, "extract").Detail, "adopted earlier") {
		t.Fatalf("back to 1.0: %+v", out)
	}
	if m, err := deploy.ReadMarker(filepath.Join(h.root, "releases", "1.0")); err != nil || m.Digest != digest || !m.Adopted {
		t.Fatalf("marker %+v, %v", m, err)
	}
	// Now known by its package's digest, it is reused without a comparison.
	h.apply("1.0", "1.1")
	out, _ = h.run(command(events.ActionApply, "1.1", "1.0", url, digest))
	if out.Failed || !strings.Contains(line(out.Report, "extract").Detail, "extracted earlier from "+digest) {
		t.Fatalf("back to 1.0 again: %+v", out)
	}
}

// installedOver applies to over the hand-made from, by a request.
func (h *host) installedOver(from, to string) {
	h.t.Helper()
	if out := h.apply(from, to); out.Failed {
		h.t.Fatalf("%s -> %s: %+v", from, to, out)
	}
	h.calls()
}

func TestAnAdoptedReleaseWithOtherFilesThanThePackageConflicts(t *testing.T) {
	t.Parallel()
	h := newHost(t, 0)
	edited := release("1.0")
	edited[len(edited)-1] = reg("conf/app.yaml", "port: 9090\n")
	h.handInstalled("1.0", edited)
	if _, err := h.adopt(deploy.AdoptOptions{Version: "1.0"}); err != nil {
		t.Fatal(err)
	}
	h.installedOver("1.0", "1.1")
	out := h.apply("1.1", "1.0")
	if out.Reason != deploy.ReasonReleaseConflict || !strings.Contains(out.Error, "adopted with files other than the package's") {
		t.Fatalf("outcome %+v", out)
	}
	if h.current() != "releases/1.1" || read(t, filepath.Join(h.root, "releases", "1.0", "conf", "app.yaml")) != "port: 9090\n" {
		t.Fatal("the adopted release or the target was touched")
	}
	if got := strings.Join(h.releases(), " "); got != "1.0 1.1" {
		t.Fatalf("releases %s: the comparison left something behind", got)
	}
}

func TestAdoptWithThePackageDigestReusesTheReleaseAtOnce(t *testing.T) {
	t.Parallel()
	h := newHost(t, 0)
	h.handInstalled("1.0", release("1.0"))
	url, digest := h.pack("app-1.0", release("1.0"))
	if _, err := h.adopt(deploy.AdoptOptions{Version: "1.0", Digest: digest}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.adopt(deploy.AdoptOptions{Version: "1.0", Digest: "sha256:" + strings.Repeat("1", 64)}); !errors.Is(err, deploy.ErrReleaseConflict) {
		t.Fatalf("adopt with another digest: %v", err)
	}
	h.installedOver("1.0", "1.1")
	out, _ := h.run(command(events.ActionApply, "1.1", "1.0", url, digest))
	if out.Failed || !strings.Contains(line(out.Report, "extract").Detail, "extracted earlier from "+digest) {
		t.Fatalf("outcome %+v", out)
	}
}

func TestAdoptCopiesAnInstallationFromElsewhere(t *testing.T) {
	t.Parallel()
	h := newHost(t, 0)
	opt := filepath.Join(h.dir, "opt", "app")
	handMade(t, opt, release("1.0"))
	res, err := h.adopt(deploy.AdoptOptions{Version: "1.0", From: opt})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Switched || res.Current != "1.0" || h.current() != "releases/1.0" || res.Copied != opt {
		t.Fatalf("adopted %+v, current -> %s", res, h.current())
	}
	if read(t, filepath.Join(h.root, "releases", "1.0", "bin", "run")) != "#!/bin/sh\necho 1.0\n" {
		t.Fatal("copy")
	}
	if fi, err := os.Stat(filepath.Join(h.root, "releases", "1.0", "bin", "app")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Fatalf("the executable bit was lost: %v %v", fi.Mode(), err)
	}
	if _, err := os.Stat(filepath.Join(opt, "VERSION")); err != nil {
		t.Fatal("the original was touched")
	}
	if out := h.apply("1.0", "1.1"); out.Failed {
		t.Fatalf("upgrade: %+v", out)
	}
}

func TestAdoptRefusesWhatItCannotRecord(t *testing.T) {
	t.Parallel()
	h := newHost(t, 0)
	opt := filepath.Join(h.dir, "opt", "app")
	handMade(t, opt, release("1.0"))
	h.handInstalled("1.0", release("1.0"))
	for _, tc := range []struct {
		name string
		o    deploy.AdoptOptions
		want string
	}{
		{"bad version", deploy.AdoptOptions{Version: "../x"}, "not a plain directory name"},
		{"bad digest", deploy.AdoptOptions{Version: "1.0", Digest: "sha1:00"}, "digest"},
		{"no such release", deploy.AdoptOptions{Version: "0.9"}, "give --from DIR"},
		{"copy over a release", deploy.AdoptOptions{Version: "1.0", From: opt}, "exists already"},
		{"copy from nothing", deploy.AdoptOptions{Version: "0.9", From: filepath.Join(h.dir, "nope")}, "not a directory"},
	} {
		if _, err := h.adopt(tc.o); !errors.Is(err, deploy.ErrNotAdoptable) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// A current that is a directory, not a link, is not a layout to adopt.
	h2 := newHost(t, 0)
	handMade(t, filepath.Join(h2.root, "current"), release("1.0"))
	if _, err := h2.adopt(deploy.AdoptOptions{Version: "1.0", From: opt}); !errors.Is(err, deploy.ErrNotAdoptable) {
		t.Errorf("current is a directory: %v", err)
	}
	if m, err := deploy.ReadMarker(filepath.Join(h.root, "releases", "1.0")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused adopt wrote a marker: %+v %v", m, err)
	}
}
