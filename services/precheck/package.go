package precheck

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"aead.dev/minisign"

	"github.com/upshift/upshift/pkg/artifact"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/pkg/unpack"
)

// Names of the package's report lines.
const (
	CheckDigest    = "artifact digest"
	CheckSignature = "signature"
	CheckSafety    = "package safety"
)

// maxSignature bounds a signature file: a minisign signature is a few
// hundred bytes, its comments included.
const maxSignature = 64 << 10

// checkPackage stages the package and checks it: its digest, its signature
// when the request names one, and that deploy would extract it (package
// unpack's rules and limits). The signature and safety checks need the
// verified copy, so they run only once the digest holds. A non-nil error is
// a hitch worth retrying (the network, a shutdown), not a verdict.
func (e *Executor) checkPackage(ctx context.Context, a events.Artifact, progress phase.Progress) ([]events.ReportLine, string, error) {
	progress("staging " + a.URL)
	start := time.Now()
	alg, _, _ := strings.Cut(a.Digest, ":")
	digest := events.ReportLine{Name: CheckDigest, Value: a.Digest, Threshold: "sha256 or sha512"}
	path, err := e.Artifacts.Fetch(ctx, a.URL, a.Digest)
	digest.Duration = time.Since(start)
	if err != nil && (ctx.Err() != nil || errors.Is(err, artifact.ErrTransient)) {
		// Retried with back-off; reported failed at the last delivery.
		return nil, "", fmt.Errorf("stage artifact: %w", err)
	}
	switch {
	case err != nil:
		digest.Status, digest.Detail = events.CheckFail, err.Error()
	case alg == "md5":
		digest.Status, digest.OK = events.CheckWarn, true
		digest.Detail = "staged and verified " + a.Digest + "; md5 is weak (a package can be forged to match it): use sha256 or sha512"
	default:
		digest.Status, digest.OK = events.CheckPass, true
		digest.Detail = "staged and verified " + a.Digest
	}
	lines := []events.ReportLine{digest}
	if err != nil {
		return lines, "", nil
	}
	if a.Signature != "" {
		progress("verifying the signature " + a.Signature)
		line, err := e.checkSignature(ctx, path, a.Signature)
		if err != nil {
			return nil, "", err
		}
		lines = append(lines, line)
	}
	progress("inspecting the package")
	line, err := e.checkSafety(ctx, path)
	if err != nil {
		return nil, "", err
	}
	return append(lines, line), path, nil
}

// checkSafety applies deploy's extraction rules to the package, writing
// nothing.
func (e *Executor) checkSafety(ctx context.Context, path string) (events.ReportLine, error) {
	start := time.Now()
	l := e.Limits
	if l.MaxSize <= 0 {
		l.MaxSize = unpack.DefaultMaxSize
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = unpack.DefaultMaxFiles
	}
	st, err := unpack.Inspect(ctx, path, l)
	if ctx.Err() != nil {
		return events.ReportLine{}, fmt.Errorf("inspect package: %w", ctx.Err())
	}
	line := events.ReportLine{Name: CheckSafety, Duration: time.Since(start),
		Value:     fmt.Sprintf("%d entries, %s, %d links", st.Entries, targets.Bytes(st.Bytes), st.Links),
		Threshold: fmt.Sprintf("<= %d entries, <= %s; no absolute paths, escapes, links out, hard links or devices", l.MaxFiles, l.MaxSize)}
	if err != nil {
		line.Status, line.Detail = events.CheckFail, err.Error()
		return line, nil
	}
	line.Status, line.OK = events.CheckPass, true
	line.Detail = "deploy can extract it safely: " + line.Value
	return line, nil
}

// checkSignature verifies the detached minisign signature at sigURL of the
// package at path against the trusted keys. Only prehashed signatures
// (minisign -S, the default since minisign 0.10) are accepted: they are
// checked while the package streams by, whatever its size.
func (e *Executor) checkSignature(ctx context.Context, path, sigURL string) (events.ReportLine, error) {
	start := time.Now()
	line := events.ReportLine{Name: CheckSignature, Status: events.CheckFail,
		Threshold: fmt.Sprintf("signed by one of %d trusted keys", len(e.TrustedKeys))}
	done := func(detail string) (events.ReportLine, error) {
		line.Detail, line.Duration = detail, time.Since(start)
		return line, nil
	}
	raw, err := e.Artifacts.Read(ctx, sigURL, maxSignature)
	if err != nil && (ctx.Err() != nil || errors.Is(err, artifact.ErrTransient)) {
		return line, fmt.Errorf("read signature: %w", err)
	}
	if err != nil {
		return done("signature: " + err.Error())
	}
	var sig minisign.Signature
	if err := sig.UnmarshalText(raw); err != nil {
		return done(fmt.Sprintf("%s is not a minisign signature: %v", sigURL, err))
	}
	line.Value = "key " + keyID(sig.KeyID)
	if len(e.TrustedKeys) == 0 {
		return done("no trusted keys are configured (--trusted-keys): a signature cannot be verified")
	}
	var key *minisign.PublicKey
	for i := range e.TrustedKeys {
		if e.TrustedKeys[i].ID() == sig.KeyID {
			key = &e.TrustedKeys[i]
		}
	}
	if key == nil {
		return done(fmt.Sprintf("signed by key %s, which is not trusted", keyID(sig.KeyID)))
	}
	if sig.Algorithm != minisign.HashEdDSA {
		return done("a legacy (not prehashed) signature: sign with minisign -S, without -l")
	}
	f, err := os.Open(path)
	if err != nil {
		return line, fmt.Errorf("read package: %w", err)
	}
	defer f.Close()
	r := minisign.NewReader(f)
	if _, err := io.Copy(io.Discard, r); err != nil {
		return line, fmt.Errorf("read package: %w", err)
	}
	if !r.Verify(*key, raw) {
		return done(fmt.Sprintf("the signature by key %s does not match the package: it was altered, or another file was signed", keyID(sig.KeyID)))
	}
	line.Status, line.OK = events.CheckPass, true
	return done(fmt.Sprintf("signed by trusted key %s (%s)", keyID(sig.KeyID), sig.TrustedComment))
}

// keyID is a key's id as minisign prints it.
func keyID(id uint64) string { return strings.ToUpper(strconv.FormatUint(id, 16)) }

// LoadTrustedKeys reads minisign public keys from a file: each key on a line
// of its own, as minisign writes a .pub file (an "untrusted comment:" line
// before a key is skipped, so .pub files may simply be concatenated), blank
// lines and lines starting with # ignored.
func LoadTrustedKeys(path string) ([]minisign.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trusted keys: %w", err)
	}
	var keys []minisign.PublicKey
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") || strings.HasPrefix(text, "untrusted comment:") {
			continue
		}
		var k minisign.PublicKey
		if err := k.UnmarshalText([]byte(text)); err != nil {
			return nil, fmt.Errorf("trusted keys %s, line %d: %w", path, n, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("trusted keys %s: no key in the file", path)
	}
	return keys, nil
}
