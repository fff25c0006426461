package e2e_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"aead.dev/minisign"

	"github.com/upshift/upshift/cmd/upshift/internal/devstack"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator"
	"github.com/upshift/upshift/services/precheck"
)

// failsPrecheckOnly runs req and checks that its saga failed in precheck on
// the check named, with nothing deployed and no backup taken.
func (r *rig) failsPrecheckOnly(req func() (string, string, string), check, want string) {
	r.t.Helper()
	rq := r.d.Request("1.0", "1.1")
	rq.Spec.Artifact.URL, rq.Spec.Artifact.Digest, rq.Spec.Artifact.Signature = req()
	id, end := r.run(rq)
	if end.Kind != string(saga.StateFailed) || !strings.Contains(end.Reason, "precheck check on demo failed") {
		r.t.Fatalf("saga %s ended %s: %s", id, end.Kind, end.Reason)
	}
	v, err := r.s.Client.Get(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	if len(v.Saga.Steps) != 1 || v.Saga.Steps[0].Phase != events.Precheck {
		r.t.Fatalf("steps beyond precheck (a backup?): %+v", v.Saga.Steps)
	}
	step := v.Saga.Steps[0]
	if !strings.Contains(step.Error, check) {
		r.t.Fatalf("the step's error %q does not name %q", step.Error, check)
	}
	i := slices.IndexFunc(step.Report, func(l events.ReportLine) bool { return l.Name == check })
	if i < 0 || step.Report[i].LineStatus() != events.CheckFail || !strings.Contains(step.Report[i].Detail, want) {
		r.t.Fatalf("report %+v: want %q failed with %q", step.Report, check, want)
	}
	if _, err := os.Stat(r.d.Target.Release("1.1")); !os.IsNotExist(err) {
		r.t.Fatalf("release 1.1 exists: %v", err)
	}
	if r.serving() != "1.0" {
		r.t.Fatal("no longer serving 1.0")
	}
}

func TestUnsafePackageFailsPrecheckBeforeAnyBackup(t *testing.T) {
	endToEnd(t)
	dir := t.TempDir()
	r := newRigStack(t, "", "1.0", coordinator.Policy{}, func(o *devstack.Options) {
		o.ArtifactSources = append(o.ArtifactSources, "file://"+dir+"/")
	})
	// The demo's 1.1 with one entry more, which would write beside the
	// release.
	pkg := filepath.Join(dir, "demo-1.1-evil.tar.gz")
	body := withEntry(t, artifacts["1.1"].Path, &tar.Header{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	if err := os.WriteFile(pkg, body, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	r.failsPrecheckOnly(func() (string, string, string) {
		return "file://" + pkg, "sha256:" + hex.EncodeToString(sum[:]), ""
	}, precheck.CheckSafety, "escapes the release")
	if _, err := os.Stat(filepath.Join(r.d.Target.Root, "releases", "evil")); !os.IsNotExist(err) {
		t.Fatal("evil written")
	}
}

func TestUntrustedSignatureFailsPrecheckBeforeAnyBackup(t *testing.T) {
	endToEnd(t)
	dir := t.TempDir()
	trusted, _, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, stranger, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := trusted.MarshalText()
	keys := filepath.Join(dir, "trusted.pub")
	if err := os.WriteFile(keys, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRigStack(t, "", "1.0", coordinator.Policy{}, func(o *devstack.Options) {
		o.ArtifactSources = append(o.ArtifactSources, "file://"+dir+"/")
		o.TrustedKeys = keys
	})
	a := artifacts["1.1"]
	f, err := os.Open(a.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd := minisign.NewReader(f)
	if _, err := io.Copy(io.Discard, rd); err != nil {
		t.Fatal(err)
	}
	sig := filepath.Join(dir, "demo-1.1.tar.gz.minisig")
	if err := os.WriteFile(sig, rd.Sign(stranger), 0o644); err != nil {
		t.Fatal(err)
	}
	r.failsPrecheckOnly(func() (string, string, string) { return a.URL, a.Digest, "file://" + sig },
		precheck.CheckSignature, "not trusted")
}

// withEntry returns the .tar.gz at path with one more entry, of h.Size
// bytes of "x".
func withEntry(t *testing.T, path string, h *tar.Header) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
	tw.Close()
	zw.Close()
	return buf.Bytes()
}
