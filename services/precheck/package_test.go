package precheck_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"aead.dev/minisign"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/unpack"
	"github.com/upshift/upshift/services/precheck"
)

// tgz is a .tar.gz of regular files.
func tgz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var hs []*tar.Header
	for _, n := range names {
		hs = append(hs, &tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[n]))})
	}
	return tgzOf(t, hs, files)
}

func tgzOf(t *testing.T, hs []*tar.Header, bodies map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range hs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(bodies[h.Name]))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// reportLine is the report line of a check, failing the test if there is none.
func reportLine(t *testing.T, out []events.ReportLine, name string) events.ReportLine {
	t.Helper()
	i := slices.IndexFunc(out, func(l events.ReportLine) bool { return l.Name == name })
	if i < 0 {
		t.Fatalf("no %q line in %s", name, lines(out))
	}
	return out[i]
}

func TestDigestAlgorithms(t *testing.T) {
	t.Parallel()
	body := tgz(t, map[string]string{"VERSION": "1.1\n"})
	s256, s512, m5 := sha256.Sum256(body), sha512.Sum512(body), md5.Sum(body)
	other := []byte("another package")
	o256, o512, o5 := sha256.Sum256(other), sha512.Sum512(other), md5.Sum(other)
	for _, tc := range []struct {
		name, digest string
		status       events.CheckStatus
		detail       string
	}{
		{"sha256", "sha256:" + hex.EncodeToString(s256[:]), events.CheckPass, "staged and verified"},
		{"sha512", "sha512:" + hex.EncodeToString(s512[:]), events.CheckPass, "staged and verified"},
		{"md5", "md5:" + hex.EncodeToString(m5[:]), events.CheckWarn, "md5 is weak"},
		{"wrong sha256", "sha256:" + hex.EncodeToString(o256[:]), events.CheckFail, "digest mismatch"},
		{"wrong sha512", "sha512:" + hex.EncodeToString(o512[:]), events.CheckFail, "digest mismatch"},
		{"wrong md5", "md5:" + hex.EncodeToString(o5[:]), events.CheckFail, "digest mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, url, _ := host(t, "1MiB")
			os.WriteFile(strings.TrimPrefix(url, "file://"), body, 0o644)
			out, err := e.Execute(context.Background(), command(url, tc.digest, "1.0"), func(string) {})
			if err != nil {
				t.Fatal(err)
			}
			l := reportLine(t, out.Report, precheck.CheckDigest)
			if l.LineStatus() != tc.status || !strings.Contains(l.Detail, tc.detail) || l.Value != tc.digest {
				t.Fatalf("line %+v, want %s with %q", l, tc.status, tc.detail)
			}
			if out.Failed != (tc.status == events.CheckFail) {
				t.Fatalf("outcome %+v", out)
			}
		})
	}
}

// signer is a minisign key pair, made by the test.
type signer struct {
	pub  minisign.PublicKey
	priv minisign.PrivateKey
}

func newSigner(t *testing.T) signer {
	pub, priv, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return signer{pub, priv}
}

// sign writes a prehashed signature of the file at path, as `minisign -S`
// does, next to it, and returns its URL.
func (s signer) sign(t *testing.T, path string) string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := minisign.NewReader(f)
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".minisig", r.SignWithComments(s.priv, "file:"+filepath.Base(path), "test signature"), 0o644); err != nil {
		t.Fatal(err)
	}
	return "file://" + path + ".minisig"
}

func TestSignatures(t *testing.T) {
	t.Parallel()
	trusted, other, untrusted := newSigner(t), newSigner(t), newSigner(t)
	for _, tc := range []struct {
		name   string
		keys   []minisign.PublicKey
		sign   func(t *testing.T, pkg string) string
		status events.CheckStatus
		detail string
	}{
		{"trusted key", []minisign.PublicKey{other.pub, trusted.pub}, func(t *testing.T, pkg string) string { return trusted.sign(t, pkg) },
			events.CheckPass, "signed by trusted key"},
		{"untrusted key", []minisign.PublicKey{trusted.pub}, func(t *testing.T, pkg string) string { return untrusted.sign(t, pkg) },
			events.CheckFail, "which is not trusted"},
		{"tampered package", []minisign.PublicKey{trusted.pub}, func(t *testing.T, pkg string) string {
			// Signed, then replaced by another package (whose digest the
			// request then carries).
			url := trusted.sign(t, pkg)
			os.WriteFile(pkg, tgz(t, map[string]string{"VERSION": "1.1\n", "evil": "x"}), 0o644)
			return url
		}, events.CheckFail, "does not match the package"},
		{"no trusted keys", nil, func(t *testing.T, pkg string) string { return trusted.sign(t, pkg) },
			events.CheckFail, "no trusted keys are configured"},
		{"not a signature", []minisign.PublicKey{trusted.pub}, func(t *testing.T, pkg string) string {
			os.WriteFile(pkg+".minisig", []byte("hello"), 0o644)
			return "file://" + pkg + ".minisig"
		}, events.CheckFail, "is not a minisign signature"},
		{"missing signature file", []minisign.PublicKey{trusted.pub}, func(t *testing.T, pkg string) string {
			return "file://" + pkg + ".nosig"
		}, events.CheckFail, "artifact unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, url, _ := host(t, "1MiB")
			e.TrustedKeys = tc.keys
			pkg := strings.TrimPrefix(url, "file://")
			cmd := command(url, "", "1.0")
			cmd.Upgrade.Artifact.Signature = tc.sign(t, pkg)
			b, _ := os.ReadFile(pkg)
			sum := sha256.Sum256(b)
			cmd.Upgrade.Artifact.Digest = "sha256:" + hex.EncodeToString(sum[:])
			out, err := e.Execute(context.Background(), cmd, func(string) {})
			if err != nil {
				t.Fatal(err)
			}
			l := reportLine(t, out.Report, precheck.CheckSignature)
			if l.LineStatus() != tc.status || !strings.Contains(l.Detail, tc.detail) {
				t.Fatalf("line %+v, want %s with %q", l, tc.status, tc.detail)
			}
			if out.Failed != (tc.status == events.CheckFail) {
				t.Fatalf("outcome %+v", out)
			}
		})
	}
}

func TestNoSignatureNoLine(t *testing.T) {
	t.Parallel()
	e, url, digest := host(t, "1MiB")
	out, _ := e.Execute(context.Background(), command(url, digest, "1.0"), func(string) {})
	if slices.ContainsFunc(out.Report, func(l events.ReportLine) bool { return l.Name == precheck.CheckSignature }) {
		t.Fatalf("report %s", lines(out.Report))
	}
}

// The package rules are unpack's, tested there against deploy's extraction;
// here, that precheck applies them and names the rule broken.
func TestUnsafePackageFailsPrecheck(t *testing.T) {
	t.Parallel()
	reg := func(name string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}
	}
	ok := reg("VERSION")
	many := []*tar.Header{ok}
	for i := range 8 {
		many = append(many, reg("f"+strings.Repeat("x", i)))
	}
	big := &tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 100}
	for _, tc := range []struct {
		name    string
		entries []*tar.Header
		want    string
	}{
		{"absolute path", []*tar.Header{ok, reg("/tmp/evil")}, "absolute path"},
		{"dot-dot", []*tar.Header{ok, reg("../evil")}, "escapes the release"},
		{"link out", []*tar.Header{ok, {Name: "evil", Typeflag: tar.TypeSymlink, Linkname: "../../etc/passwd"}}, "outside the release"},
		{"device", []*tar.Header{ok, {Name: "evil", Typeflag: tar.TypeChar, Mode: 0o666}}, "device node"},
		{"too many files", many, "more than 8 entries"},
		{"too large", []*tar.Header{ok, big}, "more than 64 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, url, _ := host(t, "1MiB")
			e.Limits = unpack.Limits{MaxSize: 64, MaxFiles: 8}
			bodies := map[string]string{}
			for _, h := range tc.entries {
				bodies[h.Name] = strings.Repeat("x", int(h.Size))
			}
			body := tgzOf(t, tc.entries, bodies)
			pkg := strings.TrimPrefix(url, "file://")
			os.WriteFile(pkg, body, 0o644)
			sum := sha256.Sum256(body)
			out, err := e.Execute(context.Background(), command(url, "sha256:"+hex.EncodeToString(sum[:]), "1.0"), func(string) {})
			if err != nil {
				t.Fatal(err)
			}
			l := reportLine(t, out.Report, precheck.CheckSafety)
			if !out.Failed || l.LineStatus() != events.CheckFail || !strings.Contains(l.Detail, "unsafe package") || !strings.Contains(l.Detail, tc.want) {
				t.Fatalf("outcome %+v, want a failed %q line with %q", out, precheck.CheckSafety, tc.want)
			}
			if !strings.Contains(out.Error, precheck.CheckSafety) {
				t.Fatalf("error %q does not name the check", out.Error)
			}
		})
	}
}

func TestLoadTrustedKeys(t *testing.T) {
	t.Parallel()
	a, b := newSigner(t), newSigner(t)
	pa, _ := a.pub.MarshalText()
	dir := t.TempDir()
	file := filepath.Join(dir, "trusted.pub")
	// A .pub file as minisign writes it, then a bare key and a comment.
	os.WriteFile(file, []byte(string(pa)+"\n\n# the release team's second key\n"+b.pub.String()+"\n"), 0o644)
	keys, err := precheck.LoadTrustedKeys(file)
	if err != nil || len(keys) != 2 || !keys[0].Equal(a.pub) || !keys[1].Equal(b.pub) {
		t.Fatalf("keys %v, err %v", keys, err)
	}
	os.WriteFile(file, []byte("RWQnotakey\n"), 0o644)
	if _, err := precheck.LoadTrustedKeys(file); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("bad key: %v", err)
	}
	os.WriteFile(file, []byte("# nothing\n"), 0o644)
	if _, err := precheck.LoadTrustedKeys(file); err == nil {
		t.Fatal("a file without keys was accepted")
	}
}
