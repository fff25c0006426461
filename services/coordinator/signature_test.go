package coordinator_test

import (
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator"
)

// An environment that requires signatures refuses an unsigned upgrade before
// any saga starts; the policy file's word for an environment beats the
// --signature-environments default.
func TestSignatureRequiredByPolicy(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	w := newWorldOn(t, openKV, "a")
	w.policy = coordinator.Policy{SignatureEnvironments: []string{"production", "prod-eu"},
		Environments: map[string]coordinator.Environment{"staging": {RequireSignature: &yes}, "prod-eu": {RequireSignature: &no}}}
	w.coordinator("c1")
	for _, env := range []string{"production", "staging"} {
		e := w.refusal(w.submit(request(env, "a")))
		if !strings.Contains(e.Reason, env+" requires a signed artifact") {
			t.Fatalf("%s: reason %q", env, e.Reason)
		}
	}
	signed := request("production", "a")
	signed.Spec.Artifact.Signature = "file:///app.tgz.minisig"
	for _, r := range []struct {
		name string
		id   string
	}{{"signed in production", w.submit(signed)}, {"unsigned in prod-eu", w.submit(request("prod-eu", "a"))},
		{"unsigned in test", w.submit(request("test", "a"))}} {
		if s := w.wait(r.id, natstest.Patience); s.State != saga.StateSucceeded {
			t.Fatalf("%s: %s: %s", r.name, s.State, s.Reason)
		}
	}
}
