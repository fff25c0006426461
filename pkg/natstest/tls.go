package natstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/upshift/upshift/pkg/natsembed"
)

// TLSFiles are the PEM files of a test's own certificate authority: a
// server certificate for 127.0.0.1 and a client certificate, both signed
// by it, and a client certificate signed by nobody the server trusts.
type TLSFiles struct {
	CA                      string
	ServerCert, ServerKey   string
	ClientCert, ClientKey   string
	ForeignCert, ForeignKey string
}

// NewTLS writes a fresh CA and its certificates into t's temporary
// directory.
func NewTLS(t testing.TB) TLSFiles {
	t.Helper()
	dir := t.TempDir()
	ca, caKey := issue(t, dir, "ca", nil, nil, func(c *x509.Certificate) {
		c.IsCA, c.BasicConstraintsValid = true, true
		c.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	})
	foreign, foreignKey := issue(t, dir, "foreign-ca", nil, nil, func(c *x509.Certificate) {
		c.IsCA, c.BasicConstraintsValid = true, true
		c.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	})
	issue(t, dir, "server", ca, caKey, func(c *x509.Certificate) {
		c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	client := func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} }
	issue(t, dir, "client", ca, caKey, client)
	issue(t, dir, "foreign", foreign, foreignKey, client)
	f := func(name string) string { return filepath.Join(dir, name) }
	return TLSFiles{CA: f("ca.pem"), ServerCert: f("server.pem"), ServerKey: f("server-key.pem"),
		ClientCert: f("client.pem"), ClientKey: f("client-key.pem"),
		ForeignCert: f("foreign.pem"), ForeignKey: f("foreign-key.pem")}
}

// Configure makes a server serve TLS only, with the server certificate,
// and require a client certificate signed by the CA.
func (f TLSFiles) Configure(t testing.TB) func(*server.Options) {
	t.Helper()
	cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: f.ServerCert, KeyFile: f.ServerKey, CaFile: f.CA, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	return func(o *server.Options) {
		o.TLSConfig, o.TLS, o.TLSVerify, o.TLSTimeout = cfg, true, true, 5
	}
}

// StartTLS starts a server that requires mutual TLS (see TLSFiles.Configure).
func StartTLS(t testing.TB) (*natsembed.Server, TLSFiles) {
	t.Helper()
	files := NewTLS(t)
	s, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Configure: files.Configure(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s, files
}

// issue writes dir/name.pem and dir/name-key.pem: a certificate signed by
// parent (itself when nil), shaped by edit.
func issue(t testing.TB, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey,
	edit func(*x509.Certificate)) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "upshift test " + name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}
	edit(tmpl)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(file, kind string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, file), pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(name+".pem", "CERTIFICATE", der)
	write(name+"-key.pem", "EC PRIVATE KEY", keyDER)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
