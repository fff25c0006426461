// Package natsembed runs a NATS server with JetStream inside the process: the
// all-in-one `upshift dev` mode and every test use it, on ports chosen by the
// kernel and storage in a directory of their own, so nothing depends on what
// else runs on the machine.
package natsembed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configures an embedded server.
type Options struct {
	// Dir holds JetStream's file storage. Required.
	Dir string
	// Host to listen on; default 127.0.0.1.
	Host string
	// Port to listen on; 0 or -1 picks a free one.
	Port int
	// Name of the server; default "upshift-dev".
	Name string
	// Logs makes the server log to stderr.
	Logs bool
	// MaxPayload bounds a message; default 4 MiB (a NATS server's own
	// default is 1 MiB).
	MaxPayload int32
	// ConfigFile, when set, is a nats-server configuration file whose users,
	// permissions and TLS the server runs with, as a production server
	// would (deploy/nats/upshift.conf); its listen address, storage
	// directory and name are replaced by these options'.
	ConfigFile string
	// Logger, when set, receives the server's log (Logs is then ignored).
	Logger server.Logger
	// Configure, when set, changes the server's options last, before it
	// starts: tests set TLS this way.
	Configure func(*server.Options)
}

// Server is a running embedded server.
type Server struct {
	*server.Server
}

// Start starts a server and waits until it accepts connections.
func Start(o Options) (*Server, error) {
	if o.Dir == "" {
		return nil, errors.New("natsembed: a storage directory is required")
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	opts := &server.Options{}
	if o.ConfigFile != "" {
		var err error
		if opts, err = server.ProcessConfigFile(o.ConfigFile); err != nil {
			return nil, fmt.Errorf("natsembed: %w", err)
		}
		// The file's monitoring port is not the embedder's to open.
		opts.HTTPHost, opts.HTTPPort = "", 0
	}
	opts.ServerName, opts.Host, opts.Port = o.Name, o.Host, o.Port
	opts.JetStream, opts.StoreDir, opts.NoSigs, opts.MaxPayload = true, filepath.Clean(o.Dir), true, o.MaxPayload
	if opts.MaxPayload == 0 {
		// A request may hold a few hundred targets; leave room above the
		// event size limit.
		opts.MaxPayload = 4 << 20
	}
	if opts.ServerName == "" {
		opts.ServerName = "upshift-dev"
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	if o.Configure != nil {
		o.Configure(opts)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	switch {
	case o.Logger != nil:
		s.SetLogger(o.Logger, false, false)
	case o.Logs:
		s.ConfigureLogger()
	}
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, errors.New("natsembed: server not ready after 15s")
	}
	return &Server{s}, nil
}

// URL is the client URL of the server.
func (s *Server) URL() string { return s.ClientURL() }

// Stop shuts the server down and waits until it has.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}
