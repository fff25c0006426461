package notify_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/services/notify"
)

// Two teams, each with its own channels, by kind and severity.
func TestRoutesSendEachTeamsNoticesToItsChannels(t *testing.T) {
	t.Parallel()
	chat, mail, pager, audit, idle := &recorder{name: "billing-chat"}, &recorder{name: "billing-mail"},
		&recorder{name: "dba-pager"}, &recorder{name: "audit"}, &recorder{name: "idle"}
	routes := notify.NewRouter([]notify.Route{
		{Teams: []string{"billing"}, MinSeverity: notify.SeverityWarning, Channels: []string{"billing-chat"}},
		{Teams: []string{"billing"}, Kinds: []string{"rolled_back", "succeeded"}, Channels: []string{"billing-mail"}},
		{Teams: []string{"dba"}, MinSeverity: notify.SeverityCritical, Channels: []string{"dba-pager", "billing-chat"}},
		{Teams: []string{"*"}, Kinds: []string{"awaiting_approval"}, Channels: []string{"audit"}},
	})
	r := startWith(t, notify.Config{Routes: routes, Channels: []notify.Channel{chat, mail, pager, audit, idle}})
	for i, kind := range []string{"prechecking", "awaiting_approval", events.KindStepFailed, "rolled_back", "failed", "succeeded"} {
		ev := sagaEvent()
		ev.Saga, ev.Kind, ev.State, ev.Seq = fmt.Sprintf("s%d", i+1), kind, kind, 1
		r.publish(ev, "")
	}
	last := sagaEvent()
	last.Saga, last.Kind, last.State, last.Seq, last.Teams = "end", "succeeded", "succeeded", 1, []string{"billing"}
	r.publish(last, "")
	natstest.Eventually(t, wait, "the last notice delivered", func() bool { return mail.has("end", "succeeded") })

	got := func(r *recorder) string {
		var out []string
		for _, n := range r.notices() {
			if n.Saga != "end" {
				out = append(out, n.Team+":"+n.Kind)
			}
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	for _, c := range []struct {
		ch   *recorder
		want string
	}{
		// billing at warning and above (awaiting_approval is an action), and
		// dba's critical ones.
		{chat, "billing:awaiting_approval billing:failed billing:rolled_back billing:step_failed dba:failed"},
		{mail, "billing:rolled_back billing:succeeded"},
		{pager, "dba:failed"},
		{audit, "billing:awaiting_approval dba:awaiting_approval"},
		{idle, ""},
	} {
		if g := got(c.ch); g != c.want {
			t.Errorf("%s got %q, want %q", c.ch.name, g, c.want)
		}
	}
	// The same notice to one channel from two routes is delivered once.
	if n := len(chat.notices()); n != 5 {
		t.Errorf("billing-chat got %d notices, want 5", n)
	}
}

func TestRoutesFileProblemsAreNamed(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, yaml, want string }{
		{"unknown kind", "routes: [{teams: [a], kinds: [exploded], channels: [log]}]", `unknown kind "exploded"`},
		{"unknown channel", "routes: [{teams: [a], channels: [pager]}]", `no channel named "pager"`},
		{"bad severity", "routes: [{teams: [a], minSeverity: high, channels: [log]}]", `minSeverity "high"`},
		{"no teams", "routes: [{channels: [log]}]", "teams is required"},
		{"no routes", "channels: {}", "no routes"},
		{"log redefined", "channels: {log: {slack: {url: {env: X}}}}\nroutes: [{teams: ['*'], channels: [log]}]", "built in"},
		{"two kinds of channel", "channels: {x: {slack: {url: {env: X}}, webhook: {url: 'https://h', secret: {env: Y}}}}\nroutes: [{teams: ['*'], channels: [x]}]", "exactly one"},
		{"a secret in two places", "channels: {x: {slack: {url: {env: X, file: /f}}}}\nroutes: [{teams: ['*'], channels: [x]}]", "not both"},
		{"mail without a server", "channels: {m: {email: {from: a@b.c, to: [d@e.f]}}}\nroutes: [{teams: ['*'], channels: [m]}]", "server"},
		{"unknown field", "routes: [{teams: [a], channels: [log], severity: info}]", "unknown field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := notify.ParseRoutes([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// The example is what an operator copies: it loads, and its channels build
// from the secrets it names.
func TestTheExampleRoutesFileLoadsAndBuilds(t *testing.T) {
	t.Parallel()
	f, err := notify.LoadRoutes(filepath.Join("..", "..", "examples", "notify.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"UPSHIFT_OPS_HOOK_SECRET":   notify.SecretPrefix + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123")),
		"UPSHIFT_BILLING_SLACK_URL": "https://hooks.slack.example/services/T0/B0/xyz",
		"UPSHIFT_SMTP_PASSWORD":     "hunter22",
	}
	chs, err := f.Build(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range chs {
		names = append(names, c.Name())
	}
	if want := []string{"billing-chat", "billing-mail", "ops-hook"}; !slices.Equal(names, want) {
		t.Fatalf("channels %q, want %q", names, want)
	}
	// A secret missing from the environment is named, never its value.
	delete(env, "UPSHIFT_SMTP_PASSWORD")
	if _, err := f.Build(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err == nil ||
		!strings.Contains(err.Error(), "UPSHIFT_SMTP_PASSWORD") || strings.Contains(err.Error(), "xyz") {
		t.Fatalf("err %v", err)
	}
}

// A secret read from a file loses its trailing line break.
func TestASecretComesFromAFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "hook.secret")
	secret := notify.SecretPrefix + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := notify.ParseRoutes(fmt.Appendf(nil, "channels: {h: {webhook: {url: 'https://h.example', secret: {file: %q}}}}\nroutes: [{teams: ['*'], channels: [h]}]", path))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Build(func(string) (string, bool) { return "", false }); err != nil {
		t.Fatal(err)
	}
}
