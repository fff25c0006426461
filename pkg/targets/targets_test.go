package targets_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/targets"
)

func TestParseFillsDefaults(t *testing.T) {
	r, err := targets.Parse([]byte(`
targets:
  web-1:
    root: web1
    backup: {dir: saved, paths: [shared]}
    hooks:
      start: {command: [./ctl, start], timeout: 5s}
      stop: {command: [./ctl, stop]}
    env: {DB_PASSWORD: hunter2}
    health: {url: "http://127.0.0.1:8080/healthz"}
    precheck: {minFreeDisk: 1.5GiB}
`), "/srv")
	if err != nil {
		t.Fatal(err)
	}
	w, err := r.Get("web-1")
	if err != nil {
		t.Fatal(err)
	}
	if w.Root != "/srv/web1" || w.Backup.Dir != "/srv/web1/saved" || w.Keep != 3 || w.Health.Successes != 3 {
		t.Fatalf("target %+v", w)
	}
	if w.Hooks.Start.Timeout.Duration != 5*time.Second || w.Hooks.Stop.Timeout.Duration != time.Minute {
		t.Fatalf("hook time-outs %v %v", w.Hooks.Start.Timeout, w.Hooks.Stop.Timeout)
	}
	if w.Precheck.MinFreeDisk != targets.Bytes(1.5*(1<<30)) {
		t.Fatalf("min free disk %d", w.Precheck.MinFreeDisk)
	}
	if w.Env["DB_PASSWORD"].String() != "*****" {
		t.Fatal("secret printed")
	}
	env := strings.Join(w.HookEnv(map[string]string{"UPSHIFT_VERSION": "1.1"}), " ")
	for _, want := range []string{"DB_PASSWORD=hunter2", "UPSHIFT_TARGET=web-1", "UPSHIFT_ROOT=/srv/web1", "UPSHIFT_VERSION=1.1"} {
		if !strings.Contains(env, want) {
			t.Errorf("hook env lacks %s", want)
		}
	}
	if _, err := r.Get("web-2"); !errors.Is(err, targets.ErrUnknown) {
		t.Fatalf("unknown target: %v", err)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, doc := range []string{
		"targets: {web-1: {root: /a, hoks: {}}}",
		"targets: {Web_1: {root: /a}}",
		"targets: {web-1: {}}",
		"targets: {web-1: {root: /a, hooks: {start: {command: []}}}}",
		"targets: {web-1: {root: /a, precheck: {minFreeDisk: lots}}}",
		"targets: {web-1: {root: /a, backup: {paths: [../etc]}}}",
		"targets: {web-1: {root: /a, backup: {paths: [/etc]}}}",
		"targets: {web-1: {root: /a, backup: {dir: /b}}, web-2: {root: /c, backup: {dir: /b}}}",
		"targets: {web-1: {root: /a, databases: [{name: a}]}}",
		"targets: {web-1: {root: /a, databases: [{name: a, dsnEnv: A, dsnFile: /a}]}}",
		"targets: {web-1: {root: /a, databases: [{name: A_1, dsnEnv: A}]}}",
		"targets: {web-1: {root: /a, databases: [{name: a, dsnEnv: A}, {name: a, dsnEnv: B}]}}",
		"targets: {web-1: {root: /a, databases: [{name: a, kind: mysql, dsnEnv: A}]}}",
		"targets: {web-1: {root: /a, databases: [{name: a, dsnEnv: A}], migrations: {database: b}}}",
		"targets: {web-1: {root: /a, databases: [{name: a, dsnEnv: A}, {name: b, dsnEnv: B}], migrations: {dir: sql}}}",
		"targets: {web-1: {root: /a, databases: [{name: a, dsnEnv: A}], migrations: {dir: ../sql}}}",
		"targets: {web-1: {root: /a, labels: {Role: web}}}",
		"targets: {web-1: {root: /a, labels: {role: \"a b\"}}}",
	} {
		if _, err := targets.Parse([]byte(doc), "/"); err == nil {
			t.Errorf("accepted %s", doc)
		}
	}
}

// Migrations go to the named database, or to the only one; several
// databases and no name leave nothing to migrate.
func TestMigrationsTarget(t *testing.T) {
	for _, c := range []struct{ doc, db, dir string }{
		{"{root: /a, databases: [{name: a, dsnEnv: A}]}", "a", "migrations"},
		{"{root: /a, databases: [{name: a, dsnEnv: A}, {name: b, dsnEnv: B}], migrations: {database: b, dir: sql/pg}}", "b", "sql/pg"},
		{"{root: /a, databases: [{name: a, dsnEnv: A}, {name: b, dsnEnv: B}]}", "", "migrations"},
		{"{root: /a}", "", "migrations"},
	} {
		r, err := targets.Parse([]byte("targets: {web-1: "+c.doc+"}"), "/")
		if err != nil {
			t.Fatal(err)
		}
		w, _ := r.Get("web-1")
		db, dir, ok := w.MigrationsTarget()
		if ok != (c.db != "") || db.Name != c.db || dir != c.dir {
			t.Errorf("%s: %q %q %v", c.doc, db.Name, dir, ok)
		}
	}
}

// Labels are what the registry of targets announces; Describe says them
// with the version the current link points at.
func TestLabelsAndDescribe(t *testing.T) {
	root := t.TempDir()
	r, err := targets.Parse([]byte("targets: {web-1: {root: "+root+", labels: {role: web, zone: dmz}}}"), "/")
	if err != nil {
		t.Fatal(err)
	}
	labels, version := r.Describe("web-1")
	if labels["role"] != "web" || labels["zone"] != "dmz" || version != "" {
		t.Fatalf("labels %v, version %q", labels, version)
	}
	if err := os.MkdirAll(filepath.Join(root, "releases", "4.1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "releases", "4.1"), filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
	if _, version := r.Describe("web-1"); version != "4.1" {
		t.Fatalf("version %q", version)
	}
}

// A target's name is a DNS label: 1 to 63 of a-z, 0-9 and '-', starting
// and ending with a letter or digit. Its boundaries, which the rule's
// counts and anchors decide: one off either way passes every other test.
func TestTargetNameBoundaries(t *testing.T) {
	for name, ok := range map[string]bool{
		"web": true, "w": true, "9": true, "web-1": true, strings.Repeat("a", 63): true,
		"web-": false, "-web": false, strings.Repeat("a", 64): false, "Web": false, "web_1": false, "web.1": false,
	} {
		_, err := targets.Parse([]byte(`{"targets": {"`+name+`": {"root": "/srv/x"}}}`), "/")
		if (err == nil) != ok {
			t.Errorf("target %q (%d characters): accepted %v, want %v (%v)", name, len(name), err == nil, ok, err)
		}
	}
}
