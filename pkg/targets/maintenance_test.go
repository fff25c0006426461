package targets_test

import (
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/targets"
)

const maintained = `targets: {web-1: {root: /a, databases: [{name: app, dsnEnv: A}], maintenance: {
  purge: [{name: old-sessions, sql: "DELETE FROM sessions WHERE seen < now() - interval '30 days'"}],
  logs: {dirs: [logs], archive: archive/logs, check: {file: logs/app.log, url: "http://127.0.0.1:8080/"}},
  config: {paths: [shared/config, shared/app.ini]}}}}`

func TestMaintenanceDefaults(t *testing.T) {
	r, err := targets.Parse([]byte(maintained), "/")
	if err != nil {
		t.Fatal(err)
	}
	w, _ := r.Get("web-1")
	m := w.Maintenance
	if m.Purge[0].Database != "app" || m.Logs.OlderThanDays != 7 || m.Logs.Check.Within.Duration != 10*time.Second ||
		m.Config.Baseline != ".upshift-baseline.json" {
		t.Fatalf("defaults not filled: %+v %+v %+v", m.Purge, m.Logs, m.Config)
	}
	paths, skip := w.LogPaths()
	if len(paths) != 2 || paths[0] != "logs" || paths[1] != "archive/logs" || skip != "logs/app.log" {
		t.Fatalf("log paths %v skip %q", paths, skip)
	}
	if rules, err := m.PurgeRules(nil); err != nil || len(rules) != 1 {
		t.Fatalf("all rules: %v %v", rules, err)
	}
	if _, err := m.PurgeRules([]string{"nope"}); err == nil {
		t.Fatal("an unknown rule was found")
	}
}

func TestMaintenanceRefuses(t *testing.T) {
	for _, m := range []string{
		"{database: other}",
		"{purge: [{name: a, sql: 'DELETE FROM t'}]}", // no database to run it in
		"{purge: [{name: a}]}",
		"{purge: [{name: A_a, sql: x}]}",
		"{purge: [{name: a, database: nope, sql: x}]}",
		"{logs: {dirs: [logs], archive: logs/old, check: {file: logs/app.log}}}",
		"{logs: {dirs: [../logs], archive: archive, check: {file: ../logs/app.log}}}",
		"{logs: {dirs: [logs], archive: archive, check: {file: other/app.log}}}",
		"{logs: {dirs: [logs], archive: archive, check: {file: logs/app.log, url: 'ftp://x/'}}}",
		"{logs: {dirs: [logs], archive: archive, check: {file: logs/app.log, command: {command: []}}}}",
		"{logs: {archive: archive, check: {file: logs/app.log}}}",
		"{config: {paths: [/etc/app]}}",
		"{config: {paths: [etc], baseline: ../b.json}}",
	} {
		doc := "targets: {web-1: {root: /a, databases: [{name: a, dsnEnv: A}, {name: b, dsnEnv: B}], maintenance: " + m + "}}"
		if _, err := targets.Parse([]byte(doc), "/"); err == nil {
			t.Errorf("accepted %s", m)
		}
	}
}
