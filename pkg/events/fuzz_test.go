package events_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
)

// Whatever arrives on the bus, decoding it never panics, and an envelope
// that decodes encodes and decodes again to the same.
func FuzzDecode(f *testing.F) {
	for _, v := range []struct {
		typ  string
		data any
	}{
		{events.TypeSaga, events.SagaEvent{Saga: "s1", Kind: "succeeded", State: "succeeded"}},
		{events.TypeStep, events.StepResult{Step: "s1.deploy.apply.a.1", Saga: "s1", Phase: events.Deploy, Action: events.ActionApply, Target: "a", Status: events.StatusSucceeded}},
		{events.TypeNotice, events.Notice{Saga: "s1", Kind: "failed", Severity: "critical", Summary: "x -> y"}},
	} {
		env, err := events.New("id-1", v.typ, "fuzz", "s1", 1, time.Unix(0, 0), v.data)
		if err != nil {
			f.Fatal(err)
		}
		b, err := events.Encode(env)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"specversion":"1.0"}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := events.Decode(b)
		if err != nil {
			return
		}
		var e events.SagaEvent
		_ = events.Open(env, env.Type, &e) // must not panic, whatever the type
		again, err := events.Encode(env)
		if err != nil {
			t.Fatalf("a decoded envelope does not encode: %v", err)
		}
		env2, err := events.Decode(again)
		if err != nil {
			t.Fatalf("a re-encoded envelope does not decode: %v", err)
		}
		a, _ := json.Marshal(env)
		z, _ := json.Marshal(env2)
		if string(a) != string(z) {
			t.Fatalf("round trip changed it:\n%s\n%s", a, z)
		}
	})
}
