package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/upshift/upshift/pkg/targets"
)

// composeFile is the stack `make up` starts.
const composeFile = "../docker-compose.yml"

// TestComposeIsValidAndComplete has docker-compose validate the stack
// (without an engine: `config` only reads), with the variables of
// deploy/docker/env.example, then reads the file as compose resolves it:
// every service has a health check, every service another depends on is
// waited for until healthy, every file it mounts from the repository
// exists, and the Dockerfile it builds is there. No image is built.
func TestComposeIsValidAndComplete(t *testing.T) {
	t.Parallel()
	compose := tool(t, "docker-compose", "docker-compose")
	env := os.Environ()
	for k, v := range envFile(t, "docker/env.example") {
		env = append(env, k+"="+v)
	}
	check := exec.Command(compose, "-f", composeFile, "config", "-q")
	check.Env = env
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("docker-compose config -q: %v\n%s", err, out)
	}
	resolve := exec.Command(compose, "-f", composeFile, "config")
	resolve.Env = env
	out, err := resolve.Output()
	if err != nil {
		t.Fatalf("docker-compose config: %v", err)
	}
	var file struct {
		Services map[string]struct {
			Build *struct {
				Context    string `json:"context"`
				Dockerfile string `json:"dockerfile"`
			} `json:"build"`
			Healthcheck *struct {
				Test []string `json:"test"`
			} `json:"healthcheck"`
			DependsOn map[string]struct {
				Condition string `json:"condition"`
			} `json:"depends_on"`
			Volumes []string `json:"volumes"`
		} `json:"services"`
	}
	if err := yaml.Unmarshal(out, &file); err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs("..")
	for _, want := range []string{"nats", "postgres", "prometheus", "grafana", "coordinator", "notify", "agent"} {
		if _, ok := file.Services[want]; !ok {
			t.Errorf("no service %s", want)
		}
	}
	for name, s := range file.Services {
		if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
			t.Errorf("%s has no health check", name)
		}
		for dep, d := range s.DependsOn {
			if d.Condition != "service_healthy" {
				t.Errorf("%s depends on %s %q, not service_healthy", name, dep, d.Condition)
			}
		}
		for _, v := range s.Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if !filepath.IsAbs(src) {
				continue // a named volume
			}
			if !strings.HasPrefix(src, root+string(filepath.Separator)) {
				t.Errorf("%s mounts %s, outside the repository", name, src)
			} else if _, err := os.Stat(src); err != nil {
				t.Errorf("%s mounts %s: %v", name, src, err)
			}
		}
		if s.Build != nil {
			if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
				t.Errorf("%s builds %v: %v", name, s.Build, err)
			}
		}
	}
}

// The compose agent's targets file is one the agent accepts.
func TestComposeAgentTargetsLoad(t *testing.T) {
	t.Parallel()
	reg, err := targets.Load("docker/targets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get("demo"); err != nil {
		t.Fatal(err)
	}
}

// envFile reads KEY=VALUE lines.
func envFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out
}
