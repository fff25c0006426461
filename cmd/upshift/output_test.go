package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

// Every read command takes --output table|json|yaml; anything else is a
// command line error, naming the formats, before NATS is asked anything.
func TestOutputRefusesAnUnknownFormat(t *testing.T) {
	for _, args := range [][]string{
		{"list"}, {"status", "x"}, {"history", "x"}, {"notices", "--team", "t"},
		{"backups", "list"}, {"backups", "show", "x", "--target", "t"},
	} {
		args = append(args, "--output", "xml", "--nats", "nats://127.0.0.1:1", "--timeout", "1s")
		err := run(context.Background(), args, &bytes.Buffer{})
		if !errors.Is(err, exitInvalid) || !strings.Contains(err.Error(), "table, json or yaml") {
			t.Errorf("%v: err %v", args, err)
		}
	}
}

// The same saga in JSON (--output json, or --json) and in YAML: the same
// document, with the same field names.
func TestOutputJSONAndYAMLOfARealSaga(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	id := w.dryRun(t, "web-1")
	if err := run(context.Background(), []string{"watch", id, "--nats", w.s.URL()}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	read := func(unmarshal func([]byte, any) error, args ...string) map[string]any {
		t.Helper()
		var out bytes.Buffer
		if err := run(context.Background(), append(args, "--nats", w.s.URL()), &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		var v map[string]any
		if err := unmarshal(out.Bytes(), &v); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
		return v
	}
	state := func(v map[string]any) any { s, _ := v["saga"].(map[string]any); return s["state"] }
	for _, v := range []map[string]any{
		read(json.Unmarshal, "status", id, "--json"),
		read(json.Unmarshal, "status", id, "--output", "json"),
		read(yaml.Unmarshal, "status", id, "--output", "yaml"),
	} {
		if state(v) != "checked" {
			t.Errorf("status: state %v in %v", state(v), v)
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"list", "--output", "yaml", "--nats", w.s.URL()}, &out); err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	if err := yaml.Unmarshal(out.Bytes(), &list); err != nil || len(list) != 1 || list[0]["id"] != id {
		t.Fatalf("list: %v %v\n%s", list, err, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"history", id, "--output", "yaml", "--nats", w.s.URL()}, &out); err != nil ||
		!strings.Contains(out.String(), "kind: checked") {
		t.Fatalf("history: %v\n%s", err, out.String())
	}
}

// list --since keeps the sagas created since a duration ago or a time;
// anything else is a command line error.
func TestListSince(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	id := w.dryRun(t, "web-1")
	if err := run(context.Background(), []string{"watch", id, "--nats", w.s.URL()}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	list := func(since string) []string {
		t.Helper()
		var out bytes.Buffer
		if err := run(context.Background(), []string{"list", "--since", since, "--json", "--nats", w.s.URL()}, &out); err != nil {
			t.Fatalf("--since %s: %v", since, err)
		}
		var sagas []struct{ ID string }
		if err := json.Unmarshal(out.Bytes(), &sagas); err != nil {
			t.Fatalf("--since %s: %v\n%s", since, err, out.String())
		}
		var ids []string
		for _, s := range sagas {
			ids = append(ids, s.ID)
		}
		return ids
	}
	if got := list("1h"); len(got) != 1 || got[0] != id {
		t.Errorf("--since 1h: %v", got)
	}
	if got := list(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)); len(got) != 1 {
		t.Errorf("--since an hour ago: %v", got)
	}
	if got := list(time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); len(got) != 0 {
		t.Errorf("--since in an hour: %v", got)
	}
	for _, bad := range []string{"yesterday", "-1h", "2026-03-01"} {
		err := run(context.Background(), []string{"list", "--since", bad, "--nats", w.s.URL()}, &bytes.Buffer{})
		if !errors.Is(err, exitInvalid) || !strings.Contains(err.Error(), "RFC 3339") {
			t.Errorf("--since %s: err %v", bad, err)
		}
	}
}
