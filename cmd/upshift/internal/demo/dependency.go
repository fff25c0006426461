package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// DependencyName names the demo's stand-in third-party service.
const DependencyName = "inventory-api"

// Dependency stands in for a third-party service the demo's application
// relies on, so that the demo's precheck has one to check: it answers
// /health with {"status": "UP"} on 127.0.0.1.
type Dependency struct {
	// Addr is its host:port, URL its health URL.
	Addr, URL string
	srv       *http.Server
}

// StartDependency serves the stand-in dependency on a free port until Close.
func StartDependency() (*Dependency, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start the demo's dependency: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status": "UP", "service": "`+DependencyName+`"}`)
	})
	d := &Dependency{Addr: ln.Addr().String(), srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	d.URL = "http://" + d.Addr + "/health"
	go func() { _ = d.srv.Serve(ln) }()
	return d, nil
}

// Close stops serving.
func (d *Dependency) Close() error {
	if d == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stop the demo's dependency: %w", err)
	}
	return nil
}
