package verify

import (
	"flag"
	"fmt"
	"net/http"
	"net/url"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/upshift/upshift/pkg/phase"
	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/pkg/targets"
)

// Settings of an upshift-verify process: flags, or UPSHIFT_* variables.
// Program registers every flag; the Register promoted from phase.Settings
// alone leaves out --prometheus-url.
type Settings struct {
	phase.Settings
	// PrometheusURL is the Prometheus (or compatible) server the analyses
	// query; empty: none, and a target with analyses fails verification.
	// A user and password in it are masked in logs and -h.
	PrometheusURL string
}

// register adds the flags of verify's own to fs.
func (s *Settings) register(fs *flag.FlagSet) {
	service.URLVar(fs, &s.PrometheusURL, "prometheus-url", s.PrometheusURL,
		"the Prometheus server the metric analyses query, e.g. http://prometheus:9090")
}

// Prometheus returns the client of PrometheusURL; nil if none is set.
func (s Settings) Prometheus() (Querier, error) {
	if s.PrometheusURL == "" {
		return nil, nil
	}
	if u, err := url.Parse(s.PrometheusURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--prometheus-url must be an http:// or https:// URL")
	}
	c, err := promapi.NewClient(promapi.Config{Address: s.PrometheusURL})
	if err != nil {
		return nil, fmt.Errorf("--prometheus-url: %w", err)
	}
	return promv1.NewAPI(c), nil
}

// Program is the verify process, built from its settings: its main runs it,
// and `upshift dev` builds its verify service with it.
func Program(s *Settings) service.Program {
	return phase.Program("verify", ":9105", &s.Settings, s.register, func(env service.Env, served *targets.Registry) (service.Component, error) {
		prom, err := s.Prometheus()
		if err != nil {
			return nil, err
		}
		// No client-wide time-out: the executor bounds each probe itself.
		return New(env.JS, Config{Instance: env.Instance, Targets: served, Client: &http.Client{}, Prometheus: prom,
			Consumer: s.Consumer, Streams: env.Streams()}, env.Log, env.Registry), nil
	})
}
