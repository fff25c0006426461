package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/upshift/upshift/pkg/artifact"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/spec"
)

// What `upshift artifact put` prints is what a request needs, and a
// precheck or deploy store fetches the very bytes with it.
func TestArtifactPutRoundTrip(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	_, js := natstest.Connect(t, srv)
	file := filepath.Join(t.TempDir(), "billing-4.2.tar.gz")
	body := bytes.Repeat([]byte("release 4.2 "), 100_000) // several chunks
	if err := os.WriteFile(file, body, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		url  string
	}{
		{[]string{"artifact", "put", file, "--nats", srv.URL()}, "objectstore://upshift-artifacts/billing-4.2.tar.gz"},
		{[]string{"artifact", "put", file, "--bucket", "releases", "--name", "billing/4.2.tar.gz", "--nats", srv.URL()},
			"objectstore://releases/billing/4.2.tar.gz"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), tc.args, &out); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		m := regexp.MustCompile(`(?m)^url: (\S+)\ndigest: (\S+)$`).FindStringSubmatch(out.String())
		if m == nil || m[1] != tc.url {
			t.Fatalf("output %q, want url %s", out.String(), tc.url)
		}
		if err := spec.CheckArtifactURL(m[1]); err != nil {
			t.Fatal(err)
		}
		if err := spec.CheckDigest(m[2]); err != nil {
			t.Fatal(err)
		}
		s := &artifact.Store{Dir: t.TempDir(), JS: js, Sources: []string{tc.url}}
		p, err := s.Fetch(context.Background(), m[1], m[2])
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(p); !bytes.Equal(got, body) {
			t.Fatal("fetched something else")
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"artifact", "put", "--nats", srv.URL()}, &out); err == nil {
		t.Fatal("put without a file succeeded")
	}
}
