package targets_test

import (
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/targets"
)

// The defaults are merged into every target: a target's setting wins, a
// list entry with a default's name replaces it in place, others follow.
func TestPrecheckDefaultsAreMerged(t *testing.T) {
	r, err := targets.Parse([]byte(`
defaults:
  precheck:
    timeout: 3s
    minFreeDisk: 1GiB
    minMemory: 512MiB
    os: {names: [ubuntu]}
    endpoints:
      - {name: db, address: "db-1:5432"}
      - {address: "cache-1:6379"}
    dependencies:
      - {name: payments, url: "http://payments/health"}
targets:
  web-1:
    root: /srv/web1
    precheck:
      minFreeDisk: 5GiB
      endpoints:
        - {name: db, address: "db-2:5432", timeout: 1s}
        - {name: queue, address: "mq-1:5672"}
  web-2:
    root: /srv/web2
    databases:
      - {name: orders, dsnFile: secrets/orders.dsn}
    precheck:
      os: {kernel: ">=5.4"}
      databases:
        - {name: orders, version: ">=13 <17"}
`), "/etc/upshift")
	if err != nil {
		t.Fatal(err)
	}
	w1, _ := r.Get("web-1")
	w2, _ := r.Get("web-2")
	p1, p2 := w1.Precheck, w2.Precheck
	if p1.MinFreeDisk != 5<<30 || p2.MinFreeDisk != 1<<30 || p1.MinMemory != 512<<20 || p2.MinMemory != 512<<20 {
		t.Fatalf("thresholds %+v / %+v", p1, p2)
	}
	var eps []string
	for _, e := range p1.Endpoints {
		eps = append(eps, e.Label()+"="+e.Address+"/"+e.Timeout.String())
	}
	if got := strings.Join(eps, " "); got != "db=db-2:5432/1s cache-1:6379=cache-1:6379/3s queue=mq-1:5672/3s" {
		t.Fatalf("web-1 endpoints %s", got)
	}
	if len(p2.Endpoints) != 2 || p2.Endpoints[0].Address != "db-1:5432" || len(p1.Dependencies) != 1 || len(p2.Dependencies) != 1 {
		t.Fatalf("web-2 endpoints %+v, dependencies %+v %+v", p2.Endpoints, p1.Dependencies, p2.Dependencies)
	}
	if p1.OS.Names[0] != "ubuntu" || p2.OS.Kernel != ">=5.4" || len(p2.OS.Names) != 0 {
		t.Fatalf("os %+v / %+v", p1.OS, p2.OS)
	}
	if d := p2.Databases[0]; d.Name != "orders" || d.Timeout.Duration != 3*time.Second {
		t.Fatalf("database check %+v", d)
	}
	if d, ok := w2.Database("orders"); !ok || d.DSNFile != "/etc/upshift/secrets/orders.dsn" || d.Kind != "postgres" {
		t.Fatalf("database %+v", d)
	}
	// Without defaults, a check's time-out is the default's.
	r, err = targets.Parse([]byte(`targets: {a: {root: /a, precheck: {dependencies: [{name: x, url: "http://x"}]}}}`), "/")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := r.Get("a")
	if a.Precheck.Dependencies[0].Timeout.Duration != targets.DefaultCheckTimeout || a.Precheck.MinFreeDisk != 100<<20 {
		t.Fatalf("defaults %+v", a.Precheck)
	}
}

func TestPrecheckRefuses(t *testing.T) {
	for _, c := range []struct{ precheck, says string }{
		{`{minFreeDiskPercent: 120}`, "not between 0 and 100"},
		{`{minCPUs: -1}`, "negative"},
		{`{os: {}}`, "os needs"},
		{`{os: {kernel: "at least five"}}`, "version constraint"},
		{`{databases: [{name: b, version: ">=13"}]}`, `database "b" is not one of the target's databases`},
		{`{databases: [{name: a, dsnEnv: A}]}`, "unknown field"},
		{`{databases: [{version: ">=13"}]}`, "needs a name"},
		{`{databases: [{name: a}, {name: a}]}`, `two database checks named "a"`},
		{`{middleware: [{name: m}]}`, "one of command and url"},
		{`{middleware: [{name: m, command: [x], url: "http://m"}]}`, "one of command and url"},
		{`{middleware: [{name: m, command: [x], jsonField: v}]}`, "jsonField needs a url"},
		{`{middleware: [{name: m, url: "ftp://m"}]}`, "must be http"},
		{`{middleware: [{name: m, url: "http://m", pattern: "("}]}`, "pattern"},
		{`{endpoints: [{address: db}]}`, "host:port"},
		{`{endpoints: [{address: "a:1"}, {address: "a:1"}]}`, "two endpoint checks"},
		{`{bandwidth: {url: "http://b"}}`, "minRate"},
		{`{dependencies: [{name: d, url: "http://d", status: 42}]}`, "not an HTTP status"},
		{`{dependencies: [{name: d, url: "http://d", jsonValue: ok}]}`, "jsonValue needs a jsonField"},
		{`{dependencies: [{name: d, url: "http://u:pw@"}]}`, "http"},
		{`{unknown: 1}`, "unknown"},
	} {
		_, err := targets.Parse([]byte("targets: {web-1: {root: /a, databases: [{name: a, dsnEnv: A}], precheck: "+c.precheck+"}}"), "/")
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want %q", c.precheck, err, c.says)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("%s: a URL's password in %v", c.precheck, err)
		}
	}
}

// The example file stays valid.
func TestExampleTargetsFileLoads(t *testing.T) {
	r, err := targets.Load("../../examples/targets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range r.Names() {
		tg, _ := r.Get(name)
		p := tg.Precheck
		if p.OS == nil || len(p.Databases) == 0 || len(p.Middleware) == 0 || len(p.Endpoints) == 0 || p.Bandwidth == nil || len(p.Dependencies) == 0 {
			t.Errorf("%s: the example shows every kind of check: %+v", name, p)
		}
	}
}
