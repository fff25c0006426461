package service_test

import (
	"context"
	"errors"
	"testing"

	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/service"
)

// A server that verifies clients (mTLS) admits a service with a client
// certificate its CA signed, and refuses one without a certificate or with
// one signed by another CA.
func TestRunConnectsWithAClientCertificate(t *testing.T) {
	t.Parallel()
	srv, files := natstest.StartTLS(t)
	for _, tc := range []struct {
		name      string
		args      []string
		connected bool
		err       error
	}{
		{"client certificate", []string{"--nats-tls-ca", files.CA, "--nats-tls-cert", files.ClientCert, "--nats-tls-key", files.ClientKey}, true, nil},
		{"older name of the CA flag", []string{"--nats-ca", files.CA, "--nats-tls-cert", files.ClientCert, "--nats-tls-key", files.ClientKey}, true, nil},
		{"no client certificate", []string{"--nats-tls-ca", files.CA}, false, nil},
		{"certificate of another CA", []string{"--nats-tls-ca", files.CA, "--nats-tls-cert", files.ForeignCert, "--nats-tls-key", files.ForeignKey}, false, nil},
		{"no CA: the server is not trusted", []string{"--nats-tls-cert", files.ClientCert, "--nats-tls-key", files.ClientKey}, false, nil},
		{"certificate without key", []string{"--nats-tls-ca", files.CA, "--nats-tls-cert", files.ClientCert}, false, service.ErrTLSSettings},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			built, err := runTLS(t, srv.URL(), tc.args)
			switch {
			case tc.connected && (err != nil || !built):
				t.Fatalf("not connected: %v", err)
			case !tc.connected && err == nil:
				t.Fatal("connected")
			case tc.err != nil && !errors.Is(err, tc.err):
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err != nil {
				t.Log(err)
			}
		})
	}
}

// The UPSHIFT_NATS_TLS_* variables stand for the flags.
func TestRunTakesTLSFromTheEnvironment(t *testing.T) {
	srv, files := natstest.StartTLS(t)
	t.Setenv("UPSHIFT_NATS_TLS_CA", files.CA)
	t.Setenv("UPSHIFT_NATS_TLS_CERT", files.ClientCert)
	t.Setenv("UPSHIFT_NATS_TLS_KEY", files.ClientKey)
	if built, err := runTLS(t, srv.URL(), nil); err != nil || !built {
		t.Fatalf("not connected: %v", err)
	}
}

// runTLS runs a program that stops as soon as it is built, over TLS, and
// says whether it was.
func runTLS(t *testing.T, url string, args []string) (bool, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	built := false
	p := service.Program{Name: "test", Build: func(_ context.Context, env service.Env) ([]service.Component, func(), error) {
		state, err := env.NC.TLSConnectionState()
		if err != nil || len(state.PeerCertificates) == 0 {
			t.Errorf("connected without TLS: %v", err)
		}
		built = true
		cancel() // connected: that is all this test asks of the program
		return nil, nil, nil
	}}
	err := service.Run(ctx, p, append([]string{"--nats-url", url, "--ops-addr", "", "--log-level", "error"}, args...))
	return built, err
}
