package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// units are the systemd units shipped, by the binary each starts.
var units = map[string]string{
	"systemd/upshift-agent.service":       "../services/agent/cmd/upshift-agent",
	"systemd/upshift-coordinator.service": "../services/coordinator/cmd/upshift-coordinator",
	"systemd/upshift-notify.service":      "../services/notify/cmd/upshift-notify",
}

// TestSystemdUnitsVerify runs systemd-analyze verify on each unit, with
// ExecStart pointed at a stand-in executable (verify refuses a missing
// one): any line it prints, such as an unknown key or a value it ignores,
// fails the test.
func TestSystemdUnitsVerify(t *testing.T) {
	t.Parallel()
	analyze := tool(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	for unit := range units {
		b, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, "upshift-"+strings.TrimSuffix(strings.TrimPrefix(filepath.Base(unit), "upshift-"), ".service"))
		if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "/usr/local/bin/"+filepath.Base(bin), bin)
		path := filepath.Join(dir, filepath.Base(unit))
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", path).CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
		}
	}
}

// TestSystemdUnitsRunAsProductionNeeds checks what verify does not: each
// unit starts its own binary (one the repository builds), reads its
// secrets from an EnvironmentFile, restarts on failure, runs as a user
// that is not root and protects the system; the agent stops its main
// process alone, so hooks in flight finish, and never makes /opt or /srv
// (where target roots live) read-only.
func TestSystemdUnitsRunAsProductionNeeds(t *testing.T) {
	t.Parallel()
	for unit, cmd := range units {
		keys := unitKeys(t, unit)
		want := map[string]string{
			"ExecStart":       "/usr/local/bin/" + filepath.Base(cmd),
			"Restart":         "on-failure",
			"EnvironmentFile": "/etc/upshift/" + strings.TrimPrefix(filepath.Base(cmd), "upshift-") + ".env",
			"NoNewPrivileges": "yes",
		}
		for k, v := range want {
			if keys[k] != v {
				t.Errorf("%s: %s=%q, want %q", unit, k, keys[k], v)
			}
		}
		if u := keys["User"]; u == "" || u == "root" || u == "0" {
			t.Errorf("%s: User=%q: runs as root", unit, u)
		}
		if keys["ProtectSystem"] == "" || keys["ProtectSystem"] == "no" {
			t.Errorf("%s: no ProtectSystem", unit)
		}
		if _, err := os.Stat(cmd); err != nil {
			t.Errorf("%s starts a binary the repository does not build: %v", unit, err)
		}
		if strings.Contains(unit, "agent") {
			if keys["KillMode"] != "mixed" || keys["ProtectSystem"] != "full" || keys["ProtectHome"] != "" {
				t.Errorf("%s: KillMode=%q ProtectSystem=%q ProtectHome=%q: hooks would break", unit, keys["KillMode"], keys["ProtectSystem"], keys["ProtectHome"])
			}
		}
	}
}

// unitKeys reads a unit file's keys (the last value of each).
func unitKeys(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			keys[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}
