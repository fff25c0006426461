package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/fleet"
)

func TestTargetsPrintsEveryColumn(t *testing.T) {
	now := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	printTargets(&b, []fleet.Entry{
		{Target: "web-1", Service: "deploy", Instance: "agent@h1/deploy", Host: "h1",
			Labels: map[string]string{"zone": "dmz", "role": "web"}, Version: "4.1", Seen: now.Add(-4 * time.Second)},
		{Target: "web-2", Service: "verify", Instance: "verify", Seen: now},
	}, now)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "TARGET") {
		t.Fatalf("output:\n%s", b.String())
	}
	for _, want := range []string{"web-1", "role=web,zone=dmz", "4.1", "h1", "deploy", "agent@h1/deploy", "4s ago"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("line %q lacks %q", lines[1], want)
		}
	}
	if f := strings.Fields(lines[2]); len(f) != 8 || f[1] != "-" || f[2] != "-" || f[3] != "-" {
		t.Errorf("line %q: want dashes for what is not known", lines[2])
	}
	b.Reset()
	printTargets(&b, nil, now)
	if b.String() != "no targets announced\n" {
		t.Errorf("empty: %q", b.String())
	}
}
