package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"

	"github.com/upshift/upshift/cmd/upshift/internal/devstack"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/services/coordinator"
)

var deployDir = filepath.Join("..", "..", "..", "..", "deploy")

// query is one PromQL expression of a dashboard panel or an alert rule.
type query struct {
	where, expr string
	rule        bool
}

// shippedQueries reads every dashboard's and rule's expression. Grafana's
// $__rate_interval becomes a minute, longer than the run, so that every
// rate has its samples.
func shippedQueries(t *testing.T) []query {
	var qs []query
	dashboards, _ := filepath.Glob(filepath.Join(deployDir, "grafana", "dashboards", "*.json"))
	if len(dashboards) == 0 {
		t.Fatal("no dashboard in deploy/grafana/dashboards")
	}
	for _, path := range dashboards {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels []struct {
				Title   string
				Targets []struct{ Expr string }
			}
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				qs = append(qs, query{where: filepath.Base(path) + ": " + p.Title, expr: strings.ReplaceAll(tg.Expr, "$__rate_interval", "1m")})
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(deployDir, "prometheus", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{where: "rule " + r.Alert, expr: r.Expr, rule: true})
		}
	}
	return qs
}

// selectors are the series selectors of an expression.
func selectors(t *testing.T, q query) []*parser.VectorSelector {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(q.expr)
	if err != nil {
		t.Fatalf("%s: %v", q.where, err)
	}
	var out []*parser.VectorSelector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out
}

// generated are the series Prometheus makes itself, not the code.
var generated = map[string]bool{"up": true}

// TestDashboardsAndRulesReadWhatTheCodeExports runs the demo with a real
// Prometheus scraping the stack every second and the shipped rules loaded,
// then asks it every dashboard query and every series every rule reads:
// each must return data, and each metric name must be one the services
// export.
func TestDashboardsAndRulesReadWhatTheCodeExports(t *testing.T) {
	endToEnd(t)
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not installed: apt-get install prometheus (.ci/run installs it)")
	}
	r := newRigStack(t, "", "", coordinator.Policy{}, func(o *devstack.Options) { o.OpsAddr = "127.0.0.1:0" })
	prom := startPrometheus(t, bin, r.s.Ops)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := r.d.Scenario(ctx, r.s, io.Discard); err != nil {
		t.Fatal(err)
	}

	exported := scrapeNames(t, "http://"+r.s.Ops+"/metrics")
	qs := shippedQueries(t)
	for _, q := range qs {
		for _, vs := range selectors(t, q) {
			if !exported[vs.Name] && !generated[vs.Name] {
				t.Errorf("%s: %s is exported by no service", q.where, vs.Name)
			}
		}
	}
	// Two scrapes after the last saga ended, so every rate sees it.
	natstest.Eventually(t, natstest.Patience, "Prometheus scraped the end of the run", func() bool {
		res, err := prom.query(`count_over_time(upshift_sagas_total{outcome="rolled_back"}[1m]) >= 2 and upshift_sagas_total > 0`)
		return err == nil && len(res) > 0
	})
	for _, q := range qs {
		// A dashboard query must draw something; a rule is quiet when all is
		// well, so each series it reads must exist instead, and the whole
		// expression must evaluate.
		exprs := []string{q.expr}
		if q.rule {
			if _, err := prom.query(q.expr); err != nil {
				t.Errorf("%s: %v", q.where, err)
			}
			exprs = nil
			for _, vs := range selectors(t, q) {
				exprs = append(exprs, vs.String())
			}
		}
		for _, e := range exprs {
			res, err := prom.query(e)
			switch {
			case err != nil:
				t.Errorf("%s: %s: %v", q.where, e, err)
			case len(res) == 0:
				t.Errorf("%s: %s returns no data", q.where, e)
			}
		}
	}
	// The rules were loaded, and none fires on a demo that went as planned
	// (its roll-back is a planned one).
	var rules struct {
		Data struct {
			Groups []struct {
				Rules []struct{ Name, State, Health, LastError string }
			}
		}
	}
	prom.get(t, "/api/v1/rules", &rules)
	n := 0
	for _, g := range rules.Data.Groups {
		for _, rl := range g.Rules {
			n++
			if rl.Health == "err" {
				t.Errorf("rule %s: %s", rl.Name, rl.LastError)
			}
			if rl.State == "firing" || rl.State == "pending" {
				t.Errorf("rule %s is %s on a healthy demo", rl.Name, rl.State)
			}
		}
	}
	if n == 0 {
		t.Error("Prometheus loaded no rule from deploy/prometheus/rules.yml")
	}
}

// scrapeNames lists the metric names an endpoint exports.
func scrapeNames(t *testing.T, u string) map[string]bool {
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

type prometheus struct{ base string }

// startPrometheus runs the prometheus binary on a free loopback port,
// scraping ops every second with the shipped rules.
func startPrometheus(t *testing.T, bin, ops string) *prometheus {
	dir := t.TempDir()
	rules, err := filepath.Abs(filepath.Join(deployDir, "prometheus", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: upshift-dev
    static_configs: [{targets: [%q]}]
`, rules, ops)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	logs, _ := os.Create(filepath.Join(dir, "prometheus.log"))
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	p := &prometheus{base: "http://" + addr}
	natstest.Eventually(t, natstest.Patience, "Prometheus ready", func() bool {
		resp, err := http.Get(p.base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

func (p *prometheus) get(t *testing.T, path string, out any) {
	resp, err := http.Get(p.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// query evaluates an instant query and returns its series.
func (p *prometheus) query(expr string) ([]json.RawMessage, error) {
	resp, err := http.Get(p.base + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status, Error string
		Data          struct{ Result []json.RawMessage }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s", body.Error)
	}
	return body.Data.Result, nil
}
