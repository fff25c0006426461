package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/natstest"
)

// The CLI reaches a server that verifies clients (mTLS) with
// --nats-tls-ca, --nats-tls-cert and --nats-tls-key, and is refused without
// its certificate.
func TestCLIConnectsWithAClientCertificate(t *testing.T) {
	t.Parallel()
	srv, files := natstest.StartTLS(t)
	file := filepath.Join(t.TempDir(), "app.tar.gz")
	if err := os.WriteFile(file, []byte("release"), 0o644); err != nil {
		t.Fatal(err)
	}
	put := []string{"artifact", "put", file, "--nats", srv.URL(), "--timeout", "5s"}
	var out bytes.Buffer
	err := run(context.Background(), append(put, "--nats-tls-ca", files.CA,
		"--nats-tls-cert", files.ClientCert, "--nats-tls-key", files.ClientKey), &out)
	if err != nil || !strings.Contains(out.String(), "url: objectstore://") {
		t.Fatalf("with a client certificate: %v, output %q", err, out.String())
	}
	err = run(context.Background(), append(put, "--nats-tls-ca", files.CA), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "connect to NATS") {
		t.Fatalf("without a client certificate: %v", err)
	}
}
