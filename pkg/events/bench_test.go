package events_test

import (
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
)

// BenchmarkEncode and BenchmarkDecodeOpen: a command, as every service
// handles it, on the way out and on the way in.
func BenchmarkEncode(b *testing.B) {
	c := command()
	for b.Loop() {
		env, err := events.New(c.Step, events.TypeCommand, "upshift/coordinator", "s1", 1, time.Now(), c)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := events.Encode(env); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeOpen(b *testing.B) {
	c := command()
	env, _ := events.New(c.Step, events.TypeCommand, "upshift/coordinator", "s1", 1, time.Now(), c)
	raw, _ := events.Encode(env)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		got, err := events.Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		var out events.Command
		if err := events.Open(got, events.TypeCommand, &out); err != nil {
			b.Fatal(err)
		}
	}
}
