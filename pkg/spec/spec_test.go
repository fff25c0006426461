package spec_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/spec"
)

const good = `
apiVersion: upshift/v1
kind: Upgrade
metadata:
  name: billing 4.2
  team: payments
  environment: production
spec:
  software: billing
  from: "4.1"
  to: "4.2"
  artifact:
    url: https://artifacts.example.com/billing-4.2.tar.gz
    digest: sha256:` + "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" + `
  targets: [web-1, web-2, web-3]
  rollout: {batchSize: 2}
  notify: [dba]
  timeouts: {deploy: 20m}
`

func TestParseAppliesDefaults(t *testing.T) {
	r, err := spec.Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if r.Spec.Timeouts.Deploy.Duration != 20*time.Minute || r.Spec.Timeouts.Verify != spec.DefaultTimeouts.Verify {
		t.Fatalf("timeouts %+v", r.Spec.Timeouts)
	}
	if strings.Join(r.Spec.Notify, ",") != "payments,dba" {
		t.Fatalf("notify %v: the owning team must be told", r.Spec.Notify)
	}
	b := r.Batches()
	if len(b) != 2 || len(b[0]) != 2 || b[1][0] != "web-3" {
		t.Fatalf("batches %v", b)
	}
	if r.Title() != "upgrade of billing from 4.1 to 4.2" {
		t.Fatalf("title %q", r.Title())
	}
}

func TestParseJSONToo(t *testing.T) {
	_, err := spec.Parse([]byte(`{"apiVersion":"upshift/v1","kind":"Maintenance","metadata":{"team":"ops","environment":"test"},
		"spec":{"software":"billing","targets":["db-1"],"maintenance":{"actions":["reindex","analyze"]}}}`))
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseReportsEveryProblemWithItsPath(t *testing.T) {
	_, err := spec.Parse([]byte(`
apiVersion: upshift/v2
kind: Upgrade
metadata: {team: Payments, colour: red}
spec:
  software: billing
  from: "4.1"
  to: "4.1"
  artifact: {url: "ftp://x/y", digest: "sha256:abc", signature: "objectstore://bad.bucket/x"}
  targets: [web-1, web-1, Web_2]
  rollout: {batchSize: two}
  timeouts: {deploy: 5x, verify: 48h}
  command: rm -rf /
`))
	var verr *spec.ValidationError
	if !errors.As(err, &verr) || !errors.Is(err, spec.ErrInvalid) {
		t.Fatalf("err %v", err)
	}
	want := map[string]string{
		"apiVersion":              `must be "upshift/v1"`,
		"metadata.colour":         "unknown field",
		"metadata.team":           `"Payments"`,
		"metadata.environment":    "required",
		"spec.to":                 "equals spec.from",
		"spec.artifact.url":       `scheme "ftp"`,
		"spec.artifact.digest":    "64 lower-case hex digits",
		"spec.artifact.signature": "objectstore://BUCKET/NAME",
		"spec.targets[1]":         "listed twice",
		"spec.targets[2]":         `"Web_2"`,
		"spec.rollout.batchSize":  "expected a whole number",
		"spec.timeouts.deploy":    `"5x"`,
		"spec.timeouts.verify":    "between 1s and 24h0m0s",
		"spec.command":            "unknown field",
	}
	got := map[string]string{}
	for _, p := range verr.Problems {
		got[p.Path] = p.Message
	}
	for path, msg := range want {
		if !strings.Contains(got[path], msg) {
			t.Errorf("%s: got %q, want it to mention %q", path, got[path], msg)
		}
	}
	if len(got) != len(want) {
		t.Errorf("problems %v", verr.Problems)
	}
}

func TestAnInstallIsValidWithoutFrom(t *testing.T) {
	r, err := spec.Parse([]byte(`{"apiVersion":"upshift/v1","kind":"Install","metadata":{"team":"a","environment":"b"},
		"spec":{"software":"x","to":"2","targets":["t"],"artifact":{"url":"file:///a","digest":"md5:d41d8cd98f00b204e9800998ecf8427e"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Title(); got != "first install of x 2" {
		t.Fatalf("title %q", got)
	}
}

func TestKindRules(t *testing.T) {
	for _, tc := range []struct{ doc, path string }{
		{`{"apiVersion":"upshift/v1","kind":"Maintenance","metadata":{"team":"a","environment":"b"},"spec":{"software":"x","to":"2","targets":["t"]}}`, "spec.to"},
		{`{"apiVersion":"upshift/v1","kind":"Maintenance","metadata":{"team":"a","environment":"b"},"spec":{"software":"x","targets":["t"],"maintenance":{"actions":["defrag"]}}}`, "spec.maintenance.actions[0]"},
		{`{"apiVersion":"upshift/v1","kind":"Rollout","metadata":{"team":"a","environment":"b"},"spec":{"software":"x","targets":["t"]}}`, "kind"},
		{`{"apiVersion":"upshift/v1","kind":"Upgrade","metadata":{"team":"a","environment":"b"},"spec":{"software":"x","from":"1","to":"2","targets":[],"artifact":{"url":"file:///a","digest":"md5:d41d8cd98f00b204e9800998ecf8427e"}}}`, "spec.targets"},
		{`{"apiVersion":"upshift/v1","kind":"Install","metadata":{"team":"a","environment":"b"},"spec":{"software":"x","from":"1","to":"2","targets":["t"],"artifact":{"url":"file:///a","digest":"md5:d41d8cd98f00b204e9800998ecf8427e"}}}`, "spec.from"},
		{`{"apiVersion":"upshift/v1","kind":"Install","metadata":{"team":"a","environment":"b"},"spec":{"software":"x","targets":["t"],"artifact":{"url":"file:///a","digest":"md5:d41d8cd98f00b204e9800998ecf8427e"}}}`, "spec.to"},
		{`{"apiVersion":"upshift/v1","kind":"Install","metadata":{"team":"a","environment":"b"},"spec":{"software":"x","to":"2","targets":["t"]}}`, "spec.artifact.url"},
		{`[1,2]`, ""},
		{"\t: nope", ""},
	} {
		_, err := spec.Parse([]byte(tc.doc))
		var verr *spec.ValidationError
		if !errors.As(err, &verr) {
			t.Fatalf("%s: err %v", tc.doc, err)
		}
		found := false
		for _, p := range verr.Problems {
			found = found || p.Path == tc.path
		}
		if !found {
			t.Errorf("%s: no problem at %q in %v", tc.doc, tc.path, verr.Problems)
		}
	}
}

func TestArtifactURLs(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"file:///srv/packages/app.tar.gz", true},
		{"https://artifacts.example.com/app.tar.gz", true},
		{"objectstore://releases/app/1.1.tar.gz", true},
		{"objectstore://upshift-artifacts/app.tar.gz.minisig", true},
		{"objectstore://releases/", false},
		{"objectstore://bad.bucket/app.tar.gz", false},
		{"nats://127.0.0.1:4222/releases/app.tar.gz", false},
		{"https:///app.tar.gz", false},
		{"file:", false},
	} {
		if err := spec.CheckArtifactURL(tc.url); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.url, err)
		}
	}
}

// Names become subject tokens and directory names: the rule's edges.
func TestNameRuleBoundaries(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"web", true}, {"w", true}, {"0", true}, {"web-1", true}, {"a-b-c", true},
		{strings.Repeat("a", 63), true}, {"a" + strings.Repeat("-", 61) + "b", true},
		{strings.Repeat("a", 64), false}, {"web-", false}, {"-web", false}, {"-", false},
		{"Web", false}, {"web_1", false}, {"web.1", false}, {"web 1", false}, {"wéb", false},
	} {
		doc := strings.Replace(good, "targets: [web-1, web-2, web-3]", "targets: ["+`"`+tc.name+`"`+"]", 1)
		_, err := spec.Parse([]byte(doc))
		var verr *spec.ValidationError
		bad := errors.As(err, &verr) && len(verr.Problems) == 1 && verr.Problems[0].Path == "spec.targets[0]"
		switch {
		case tc.ok && err != nil:
			t.Errorf("%q refused: %v", tc.name, err)
		case !tc.ok && !bad:
			t.Errorf("%q: want one problem at spec.targets[0], got %v", tc.name, err)
		}
	}
}

// A request selects analyses by name and sets thresholds; it can bring no
// query, URL or credential of its own.
func TestVerifySettings(t *testing.T) {
	head := `{"apiVersion":"upshift/v1","kind":"Upgrade","metadata":{"team":"a","environment":"b"},
		"spec":{"software":"x","from":"1","to":"2","targets":["t"],"artifact":{"url":"file:///a","digest":"md5:d41d8cd98f00b204e9800998ecf8427e"},"verify":`
	r, err := spec.Parse([]byte(head + `{"watch":"10m","analyses":[{"name":"error-rate","threshold":0.01},{"name":"latency"}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	v := r.Spec.Verify
	if v.Watch.Duration != 10*time.Minute || len(v.Analyses) != 2 || *v.Analyses[0].Threshold != 0.01 || v.Analyses[1].Threshold != nil {
		t.Fatalf("verify %+v", v)
	}
	for _, tc := range []struct{ verify, path, says string }{
		{`{"watch":"-1m"}`, "spec.verify.watch", "between 0 and 24h"},
		{`{"watch":"25h"}`, "spec.verify.watch", "between 0 and 24h"},
		{`{"analyses":[{"name":"Error_Rate"}]}`, "spec.verify.analyses[0].name", "lower-case"},
		{`{"analyses":[{"name":"a"},{"name":"a"}]}`, "spec.verify.analyses[1].name", "selected twice"},
		{`{"analyses":[{"name":"a","threshold":"low"}]}`, "", "threshold of type float64"},
		{`{"analyses":[{"name":"a","query":"up"}]}`, "spec.verify.analyses[0].query", "unknown field"},
		{`{"analyses":[{"name":"a","url":"http://prometheus"}]}`, "spec.verify.analyses[0].url", "unknown field"},
		{`{"prometheus":"http://u:p@prometheus"}`, "spec.verify.prometheus", "unknown field"},
	} {
		_, err := spec.Parse([]byte(head + tc.verify + `}}`))
		var verr *spec.ValidationError
		if !errors.As(err, &verr) {
			t.Fatalf("%s: err %v", tc.verify, err)
		}
		found := false
		for _, p := range verr.Problems {
			found = found || p.Path == tc.path && strings.Contains(p.Message, tc.says)
		}
		if !found {
			t.Errorf("%s: no problem at %q saying %q in %v", tc.verify, tc.path, tc.says, verr.Problems)
		}
	}
}

func TestRestoreRules(t *testing.T) {
	doc := func(maint string, skip bool) string {
		return `{"apiVersion":"upshift/v1","kind":"Maintenance","metadata":{"team":"a","environment":"b"},"spec":{"software":"x","targets":["t"],` +
			fmt.Sprintf(`"backup":{"skip":%t},"maintenance":%s}}`, skip, maint)
	}
	for _, tc := range []struct {
		name, doc, path string // path "": valid
	}{
		{"a restore", doc(`{"actions":["restore"],"backup":"01JABC-def_9"}`, false), ""},
		{"no backup named", doc(`{"actions":["restore"]}`, false), "spec.maintenance.backup"},
		{"a backup without restore", doc(`{"actions":["purge"],"backup":"s1"}`, false), "spec.maintenance.backup"},
		{"not a plain id", doc(`{"actions":["restore"],"backup":"../s1"}`, false), "spec.maintenance.backup"},
		{"a subject wildcard", doc(`{"actions":["restore"],"backup":"s.*"}`, false), "spec.maintenance.backup"},
		{"with another action", doc(`{"actions":["restore","purge"],"backup":"s1"}`, false), "spec.maintenance.actions"},
		{"without its safety backup", doc(`{"actions":["restore"],"backup":"s1"}`, true), "spec.backup.skip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := spec.Parse([]byte(tc.doc))
			if tc.path == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !r.Restores() || r.RestoreFrom() != "01JABC-def_9" || !spec.ChangesData(r.Actions()) {
					t.Fatalf("restores %t from %q", r.Restores(), r.RestoreFrom())
				}
				if got := r.Title(); got != "restore of x from the backup of saga 01JABC-def_9" {
					t.Fatalf("title %q", got)
				}
				return
			}
			var verr *spec.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err %v", err)
			}
			found := false
			for _, p := range verr.Problems {
				found = found || p.Path == tc.path
			}
			if !found {
				t.Errorf("no problem at %q in %v", tc.path, verr.Problems)
			}
		})
	}
}

func TestRolloutByPercentAndItsTolerance(t *testing.T) {
	base := `apiVersion: upshift/v1
kind: %s
metadata: {team: payments, environment: test}
spec:
  software: billing
  from: "4.1"
  to: "4.2"
  artifact: {url: "file:///p.tar.gz", digest: "sha256:` + strings.Repeat("a", 64) + `"}
  targets: [a, b, c, d, e, f, g, h, i, j, k]
  rollout: %s
`
	r, err := spec.Parse(fmt.Appendf(nil, base, "Upgrade", "{batchPercent: 25, maxFailedPercent: 10}"))
	if err != nil {
		t.Fatal(err)
	}
	// 25% of 11 targets, rounded up: batches of 3.
	if b := r.Batches(); len(b) != 4 || len(b[0]) != 3 || len(b[3]) != 2 {
		t.Fatalf("batches %v", b)
	}
	if n := r.Spec.Rollout.Tolerated(20); n != 2 {
		t.Fatalf("10%% of 20 tolerates %d", n)
	}
	for _, c := range []struct{ kind, rollout, path, msg string }{
		{"Upgrade", "{batchSize: 2, batchPercent: 25}", "spec.rollout.batchPercent", "not both"},
		{"Upgrade", "{batchPercent: 101}", "spec.rollout.batchPercent", "between 1 and 100"},
		{"Upgrade", "{maxFailedPercent: -1}", "spec.rollout.maxFailedPercent", "between 0 and 100"},
	} {
		_, err := spec.Parse(fmt.Appendf(nil, base, c.kind, c.rollout))
		var verr *spec.ValidationError
		if !errors.As(err, &verr) || len(verr.Problems) != 1 || verr.Problems[0].Path != c.path || !strings.Contains(verr.Problems[0].Message, c.msg) {
			t.Errorf("%s: %v, want %s: %s", c.rollout, err, c.path, c.msg)
		}
	}
}

// A request names its targets or chooses them by a selector, not both; a
// bad selector is named with every problem.
func TestTargetsOrSelector(t *testing.T) {
	base := strings.Replace(good, "  targets: [web-1, web-2, web-3]\n", "", 1)
	for _, tc := range []struct {
		add  string
		want string // "" valid
	}{
		{"  selector: role=web,zone!=dmz\n", ""},
		{"", "spec.targets: at least one target is required (or spec.selector to choose them by label)"},
		{"  selector: role=web\n  targets: [web-1]\n", "spec.selector: name the targets in spec.targets or choose them by spec.selector, not both"},
		{"  selector: \"Role=web,zone\"\n", `spec.selector: "Role=web,zone": term 1 "Role=web": key "Role"`},
	} {
		r, err := spec.Parse([]byte(base + tc.add))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.add, err)
		case tc.want == "" && r.Spec.Selector != "role=web,zone!=dmz":
			t.Errorf("selector %q", r.Spec.Selector)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v, want %s", tc.add, err, tc.want)
		}
	}
}
