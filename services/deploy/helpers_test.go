package deploy_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/artifact"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/deploy"
)

// ctl is the target's stop/migrate/start hook: it logs each call with the
// release current at that moment, and fails or hangs when a flag file says
// so.
const ctl = `#!/bin/sh
echo "$1 $UPSHIFT_VERSION current=$(readlink current)" >> "$CTL_LOG"
if [ -e "$CTL_FLAGS/fail-$1-$UPSHIFT_VERSION" ]; then echo "cannot $1 $UPSHIFT_VERSION" >&2; exit 3; fi
if [ -e "$CTL_FLAGS/hang-$1-$UPSHIFT_VERSION" ]; then : > "$CTL_FLAGS/hung"; exec sleep 60; fi
echo "$1 $UPSHIFT_VERSION ok"
`

// host is a target web-1 whose hooks are the ctl script.
type host struct {
	t    *testing.T
	dir  string
	root string
	log  string
	exec *deploy.Executor
}

func newHost(t *testing.T, keep int) *host {
	t.Helper()
	dir := t.TempDir()
	h := &host{t: t, dir: dir, root: filepath.Join(dir, "web-1"), log: filepath.Join(dir, "ctl.log")}
	script := filepath.Join(dir, "ctl.sh")
	must(t, os.WriteFile(script, []byte(ctl), 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, "flags"), 0o755))
	hook := func(verb string) *targets.Hook { return &targets.Hook{Command: []string{"sh", script, verb}} }
	reg, err := targets.New(map[string]targets.Target{"web-1": {
		Root:  h.root,
		Hooks: targets.Hooks{Stop: hook("stop"), Migrate: hook("migrate"), Start: hook("start")},
		Env:   map[string]targets.Secret{"CTL_LOG": targets.Secret(h.log), "CTL_FLAGS": targets.Secret(filepath.Join(dir, "flags"))},
		Keep:  keep,
	}}, dir)
	must(t, err)
	h.exec = &deploy.Executor{Targets: reg, Artifacts: &artifact.Store{Dir: filepath.Join(dir, "store")}}
	return h
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fail makes the ctl script fail verb for version.
func (h *host) fail(verb, version string) {
	must(h.t, os.WriteFile(filepath.Join(h.dir, "flags", "fail-"+verb+"-"+version), nil, 0o644))
}

// hang makes the ctl script hang in verb for version.
func (h *host) hang(verb, version string) {
	must(h.t, os.WriteFile(filepath.Join(h.dir, "flags", "hang-"+verb+"-"+version), nil, 0o644))
}

// calls returns the hook calls logged since the last call.
func (h *host) calls() []string {
	b, err := os.ReadFile(h.log)
	if os.IsNotExist(err) {
		return nil
	}
	must(h.t, err)
	must(h.t, os.Remove(h.log))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// current is where the current link points, "" if there is none.
func (h *host) current() string {
	dest, err := os.Readlink(filepath.Join(h.root, "current"))
	if os.IsNotExist(err) {
		return ""
	}
	must(h.t, err)
	return dest
}

// releases lists releases/, hidden entries included.
func (h *host) releases() []string {
	entries, err := os.ReadDir(filepath.Join(h.root, "releases"))
	if os.IsNotExist(err) {
		return nil
	}
	must(h.t, err)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// entry is one member of a test package.
type entry struct {
	name string
	typ  byte
	mode int64
	body string
	link string
}

func reg(name, body string) entry {
	return entry{name: name, typ: tar.TypeReg, mode: 0o644, body: body}
}
func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, to string) entry {
	return entry{name: name, typ: tar.TypeSymlink, mode: 0o777, link: to}
}

// release is a well-formed package of version v.
func release(v string) []entry {
	return []entry{dir("./"), dir("./bin/"), {name: "bin/app", typ: tar.TypeReg, mode: 0o755, body: "#!/bin/sh\necho " + v + "\n"},
		symlink("bin/run", "app"), reg("./VERSION", v+"\n"), dir("conf/"), reg("conf/app.yaml", "port: 8080\n")}
}

// pack writes a .tar.gz of entries and returns its URL and digest.
func (h *host) pack(name string, entries []entry) (string, string) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		must(h.t, tw.WriteHeader(hdr))
		if e.body != "" {
			_, err := tw.Write([]byte(e.body))
			must(h.t, err)
		}
	}
	must(h.t, tw.Close())
	must(h.t, gz.Close())
	path := filepath.Join(h.dir, "packages", name+".tar.gz")
	must(h.t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(h.t, os.WriteFile(path, buf.Bytes(), 0o644))
	sum := sha256.Sum256(buf.Bytes())
	return "file://" + path, "sha256:" + hex.EncodeToString(sum[:])
}

func command(action events.Action, from, to, url, digest string) events.Command {
	saga := "saga-" + to
	return events.Command{Step: events.StepID(saga, events.Deploy, action, "web-1", 1), Saga: saga,
		Phase: events.Deploy, Action: action, Target: "web-1", Attempt: 1,
		Upgrade: events.Upgrade{Kind: "Upgrade", Software: "app", From: from, To: to,
			Artifact: events.Artifact{URL: url, Digest: digest}}}
}

// run executes cmd and returns the outcome and the progress messages.
func (h *host) run(cmd events.Command) (phase.Outcome, []string) {
	h.t.Helper()
	var progress []string
	out, err := h.exec.Execute(context.Background(), cmd, func(m string) { progress = append(progress, m) })
	if err != nil {
		h.t.Fatalf("execute %s %s: %v", cmd.Action, cmd.Upgrade.To, err)
	}
	return out, progress
}

// apply installs version to from a package of release(to).
func (h *host) apply(from, to string) phase.Outcome {
	h.t.Helper()
	url, digest := h.pack("app-"+to, release(to))
	out, _ := h.run(command(events.ActionApply, from, to, url, digest))
	return out
}

func (h *host) rollback(from, to string) phase.Outcome {
	h.t.Helper()
	out, _ := h.run(command(events.ActionRollback, from, to, "", ""))
	return out
}

// installed applies versions in turn, each from the one before, and forgets
// the hook calls.
func (h *host) installed(versions ...string) {
	h.t.Helper()
	from := ""
	for _, v := range versions {
		if out := h.apply(from, v); out.Failed {
			h.t.Fatalf("install %s: %+v", v, out)
		}
		from = v
	}
	h.calls()
}

// names lists the report's lines as name=ok|FAIL.
func names(r []events.ReportLine) string {
	var out []string
	for _, l := range r {
		out = append(out, l.Name+"="+map[bool]string{true: "ok", false: "FAIL"}[l.OK])
	}
	return strings.Join(out, " ")
}

func line(r []events.ReportLine, name string) events.ReportLine {
	for _, l := range r {
		if l.Name == name {
			return l
		}
	}
	return events.ReportLine{}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return string(b)
}
