package spec_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/upshift/upshift/pkg/spec"
)

// Whatever a client sends, parsing never panics; a request that parses is
// valid, and its JSON parses again to a valid request.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	examples, _ := filepath.Glob("../../examples/*.yaml")
	for _, p := range examples {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"apiVersion":"upshift/v1","kind":"Install","metadata":{"team":"a","environment":"b"},"spec":{"software":"x","to":"2","targets":["t"]}}`))
	f.Add([]byte("kind: [\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := spec.Parse(b)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("parsed but invalid: %v", err)
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := spec.Parse(again); err != nil {
			t.Fatalf("a parsed request does not parse again: %v\n%s", err, again)
		}
	})
}
