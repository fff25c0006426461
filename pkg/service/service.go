// Package service is the plumbing every upshift process shares: the common
// settings (flags, or UPSHIFT_* environment variables), the logger, the NATS
// connection, HTTP servers (the operations one: /metrics, /healthz, /readyz)
// and signal handling. Each service's main wires these by hand around its own
// library package.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/peterbourgon/ff/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/upshift/upshift/pkg/streams"
)

// EnvPrefix prefixes the environment variable of every flag:
// --nats-url is UPSHIFT_NATS_URL.
const EnvPrefix = "UPSHIFT"

// Common are the settings of every service.
type Common struct {
	NATSURL      string
	NATSUser     string
	NATSPassword Secret
	NATSCreds    string
	NATSTLSCA    string
	NATSTLSCert  string
	NATSTLSKey   string
	OpsAddr      string
	LogLevel     string
	LogFormat    string
	Replicas     int
	// TargetsTTL is the life of a registry entry without a heartbeat.
	TargetsTTL time.Duration
}

// Register adds the common flags to fs.
func (c *Common) Register(fs *flag.FlagSet, opsAddr string) {
	URLVar(fs, &c.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS server URL(s), comma separated")
	fs.StringVar(&c.NATSUser, "nats-user", "", "NATS user")
	SecretVar(fs, &c.NATSPassword, "nats-password", "", "NATS password")
	fs.StringVar(&c.NATSCreds, "nats-creds", "", "NATS credentials file")
	fs.StringVar(&c.NATSTLSCA, "nats-tls-ca", "", "PEM file of the CA that signed the NATS server's certificate (enables TLS)")
	// The older name of --nats-tls-ca, kept so that existing units still start.
	fs.StringVar(&c.NATSTLSCA, "nats-ca", "", "older name of --nats-tls-ca")
	fs.StringVar(&c.NATSTLSCert, "nats-tls-cert", "", "PEM file of this service's client certificate, for servers that verify clients (mTLS); needs --nats-tls-key")
	fs.StringVar(&c.NATSTLSKey, "nats-tls-key", "", "PEM file of the client certificate's private key")
	fs.StringVar(&c.OpsAddr, "ops-addr", opsAddr, "address of /metrics, /healthz and /readyz (empty: off)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "json", "json or text")
	fs.IntVar(&c.Replicas, "replicas", 1, "replicas of the streams and buckets this service creates")
	fs.DurationVar(&c.TargetsTTL, "targets-ttl", streams.DefaultTargetsTTL,
		"how long the registry of targets keeps a target whose process stopped announcing it (heartbeat: a third of it); the same in every process")
}

// Streams is the provisioning configuration the settings imply.
func (c Common) Streams() streams.Config {
	return streams.Config{Replicas: c.Replicas, TargetsTTL: c.TargetsTTL}
}

// Parse parses args, then UPSHIFT_* environment variables for flags not given.
func Parse(fs *flag.FlagSet, args []string) error {
	return ff.Parse(fs, args, ff.WithEnvVarPrefix(EnvPrefix))
}

// Settings lists every flag's value for the start-up log line; secrets print
// masked because their type says so.
func Settings(fs *flag.FlagSet) []any {
	var out []any
	fs.VisitAll(func(f *flag.Flag) { out = append(out, f.Name, f.Value.String()) })
	return out
}

// Secret is a flag value kept out of logs and out of -h.
type Secret string

// SecretVar defines a secret flag: its value, and so its default in -h, is
// printed masked.
func SecretVar(fs *flag.FlagSet, p *Secret, name string, value Secret, usage string) {
	*p = value
	fs.Var(p, name, usage)
}

// URLVar defines a flag of comma-separated URLs that print, in logs and in
// -h, with what stands before '@' (a user and password, or a token) masked.
func URLVar(fs *flag.FlagSet, p *string, name, value, usage string) {
	*p = value
	fs.Var(urlValue{p}, name, usage)
}

// ListVar defines a flag of a comma-separated list.
func ListVar(fs *flag.FlagSet, p *[]string, name string, value []string, usage string) {
	*p = value
	fs.Var((*listValue)(p), name, usage)
}

type listValue []string

func (l *listValue) String() string { return strings.Join(*l, ",") }

func (l *listValue) Set(v string) error { *l = List(v); return nil }

// String masks the value.
func (s *Secret) String() string {
	if s == nil || *s == "" {
		return ""
	}
	return "*****"
}

// Set implements flag.Value.
func (s *Secret) Set(v string) error { *s = Secret(v); return nil }

// NewLogger returns the process's logger.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: json or text", format)
}

// Connect opens the NATS connection: it reconnects for ever, and logs when
// it loses and regains the server.
func Connect(c Common, name string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("NATS disconnected", "err", err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			log.Warn("NATS error", "subject", subj, "err", err)
		}),
	}
	if c.NATSUser != "" {
		opts = append(opts, nats.UserInfo(c.NATSUser, string(c.NATSPassword)))
	}
	if c.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(c.NATSCreds))
	}
	tls, err := c.tlsOptions()
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts, tls...)
	nc, err := nats.Connect(c.NATSURL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS at %s: %w", redact(c.NATSURL), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// ErrTLSSettings is returned for a client certificate without its key, or
// a key without its certificate.
var ErrTLSSettings = errors.New("NATS TLS: --nats-tls-cert and --nats-tls-key go together")

// tlsOptions are the TLS options the settings ask for: a CA to verify the
// server with, and a client certificate for a server that verifies clients.
// Either enables TLS; without both, a server's certificate is checked
// against the system's CAs.
func (c Common) tlsOptions() ([]nats.Option, error) {
	var opts []nats.Option
	if c.NATSTLSCA != "" {
		opts = append(opts, nats.RootCAs(c.NATSTLSCA))
	}
	if (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		return nil, ErrTLSSettings
	}
	if c.NATSTLSCert != "" {
		opts = append(opts, nats.ClientCert(c.NATSTLSCert, c.NATSTLSKey))
	}
	return opts, nil
}

// redact masks what stands before '@' in each of a comma-separated list of
// URLs: a user and password, or a token.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		if at := strings.LastIndex(u, "@"); at >= 0 {
			if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
				parts[i] = u[:scheme+3] + "*****" + u[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// urlValue is a flag holding URLs that print with their credentials masked.
type urlValue struct{ s *string }

func (u urlValue) String() string {
	if u.s == nil {
		return ""
	}
	return redact(*u.s)
}

func (u urlValue) Set(v string) error { *u.s = v; return nil }

// NewRegistry returns a registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// HTTPServer serves a handler until its context ends, then shuts down
// gracefully.
type HTTPServer struct {
	srv *http.Server
	ln  net.Listener
}

// NewHTTPServer listens on addr (":0" picks a port) for h.
func NewHTTPServer(addr string, h http.Handler) (*HTTPServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return &HTTPServer{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}}, nil
}

// NewOpsServer serves /metrics, /healthz (the process is alive) and /readyz
// (every ready check passes) on addr.
func NewOpsServer(addr string, reg *prometheus.Registry, ready ...func() error) (*HTTPServer, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		for _, check := range ready {
			if err := check(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	return NewHTTPServer(addr, mux)
}

// Addr is the address the server listens on.
func (o *HTTPServer) Addr() string { return o.ln.Addr().String() }

// Run serves until ctx is cancelled, then shuts down within 5 seconds.
func (o *HTTPServer) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- o.srv.Serve(o.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Connected is a ready check on a NATS connection.
func Connected(nc *nats.Conn) func() error {
	return func() error {
		if !nc.IsConnected() {
			return errors.New("NATS " + nc.Status().String())
		}
		return nil
	}
}

// Ready adapts a boolean probe to a ready check.
func Ready(what string, ok func() bool) func() error {
	return func() error {
		if !ok() {
			return errors.New(what + " not ready")
		}
		return nil
	}
}

// Interrupted returns a context cancelled by SIGINT or SIGTERM: the one place
// that handles signals.
func Interrupted(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// List splits a comma-separated flag value, dropping empty items.
func List(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
