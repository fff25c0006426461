package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/upshift/upshift/cmd/upshift/internal/demo"
	"github.com/upshift/upshift/cmd/upshift/internal/view"
	"github.com/upshift/upshift/pkg/artifact"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/deploy"
)

// Demo is the demo's application and target: three versions of a small
// HTTP server, packaged as release artifacts; 1.2 is built unhealthy, so
// upgrading to it fails verification and rolls back.
type Demo struct {
	Dir       string
	Target    targets.Target
	Registry  *targets.Registry
	Artifacts map[string]demo.Artifact
	// Dependency stands in for a third-party service the target's
	// precheck checks; it serves until Teardown.
	Dependency *demo.Dependency
}

// Versions built by the demo, and whether each is healthy.
var Versions = []struct {
	Version string
	Healthy bool
}{{"1.0", true}, {"1.1", true}, {"1.2", false}}

// PrepareDemo builds and packages the application and sets up its target
// under dir.
func PrepareDemo(ctx context.Context, dir string, out io.Writer) (*Demo, error) {
	fmt.Fprintf(out, "building the demo application, versions 1.0, 1.1 and 1.2 (1.2 built unhealthy)…\n")
	arts, err := BuildArtifacts(ctx, dir)
	if err != nil {
		return nil, err
	}
	for _, v := range Versions {
		fmt.Fprintf(out, "  packaged %s  %s\n", arts[v.Version].Path, arts[v.Version].Digest)
	}
	return NewDemo(dir, arts)
}

// BuildArtifacts builds and packages every version under dir.
func BuildArtifacts(ctx context.Context, dir string) (map[string]demo.Artifact, error) {
	arts := map[string]demo.Artifact{}
	for _, v := range Versions {
		bin, err := demo.BuildApp(ctx, filepath.Join(dir, "build"), v.Version, v.Healthy)
		if err != nil {
			return nil, err
		}
		if arts[v.Version], err = demo.Package(filepath.Join(dir, "packages"), v.Version, bin); err != nil {
			return nil, err
		}
	}
	return arts, nil
}

// NewDemo sets up a fresh target under dir for artifacts built before.
func NewDemo(dir string, arts map[string]demo.Artifact) (*Demo, error) {
	d := &Demo{Dir: dir, Artifacts: arts}
	port, err := demo.FreePort()
	if err != nil {
		return nil, err
	}
	t, err := demo.SetupTarget(filepath.Join(dir, "targets", demo.TargetName), port)
	if err != nil {
		return nil, err
	}
	if d.Dependency, err = demo.StartDependency(); err != nil {
		return nil, err
	}
	t = demo.WithDependency(t, d.Dependency)
	d.Registry, err = targets.New(map[string]targets.Target{demo.TargetName: t}, dir)
	if err != nil {
		d.Dependency.Close()
		return nil, err
	}
	d.Target, _ = d.Registry.Get(demo.TargetName)
	return d, nil
}

// Sources are the artifact sources the demo's packages come from.
func (d *Demo) Sources() []string {
	for _, a := range d.Artifacts {
		return []string{"file://" + filepath.Dir(a.Path) + "/"}
	}
	return nil
}

// Describe says where the demo's target is.
func (d *Demo) Describe() string {
	return fmt.Sprintf("target %q: root %s, serving on %s; its precheck checks disk, memory, CPUs, OS and %s (a stand-in dependency on %s)",
		demo.TargetName, d.Target.Root, strings.TrimSuffix(d.Target.Health.URL, "/healthz"), demo.DependencyName, d.Dependency.Addr)
}

// Install puts version on the target outside any saga, with the deploy
// service's own executor: the state an upgrade starts from.
func (d *Demo) Install(ctx context.Context, version string) error {
	a := d.Artifacts[version]
	x := &deploy.Executor{Targets: d.Registry, Artifacts: &artifact.Store{Dir: filepath.Join(d.Dir, "bootstrap-artifacts")}}
	out, err := x.Execute(ctx, events.Command{Step: "bootstrap", Saga: "bootstrap", Phase: events.Deploy,
		Action: events.ActionApply, Target: demo.TargetName, Attempt: 1,
		Upgrade: events.Upgrade{Kind: string(spec.KindUpgrade), Software: "demo-app", To: version,
			Artifact: events.Artifact{URL: a.URL, Digest: a.Digest}}}, func(string) {})
	if err != nil {
		return err
	}
	if out.Failed {
		return fmt.Errorf("install %s: %s", version, out.Error)
	}
	return nil
}

// Request is the upgrade request of the demo from one version to another;
// from "" makes it the first install of to.
func (d *Demo) Request(from, to string) spec.Request {
	a := d.Artifacts[to]
	kind := spec.KindUpgrade
	if from == "" {
		kind = spec.KindInstall
	}
	return spec.Request{
		APIVersion: spec.APIVersion, Kind: kind,
		Metadata: spec.Metadata{Name: "demo " + to, Team: "platform", Environment: "test"},
		Spec: spec.Spec{Software: "demo-app", From: from, To: to, Targets: []string{demo.TargetName},
			Artifact: spec.Artifact{URL: a.URL, Digest: a.Digest}, Notify: []string{"qa"},
			Timeouts: spec.Timeouts{Precheck: sec(30), Backup: sec(60), Deploy: sec(60), Verify: sec(20), Rollback: sec(60)}},
	}.WithDefaults()
}

func sec(n int) spec.Duration { return spec.Duration{Duration: time.Duration(n) * time.Second} }

// WriteRequest saves a request as YAML, for a person to read and submit.
func (d *Demo) WriteRequest(r spec.Request, name string) (string, error) {
	b, err := yaml.Marshal(r)
	if err != nil {
		return "", err
	}
	path := filepath.Join(d.Dir, "requests", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	head := "# Written by `upshift dev --demo`. Submit it again with:\n#   upshift submit -f " + path + "\n"
	return path, os.WriteFile(path, append([]byte(head), b...), 0o644)
}

// Serving reads the version the target answers with.
func (d *Demo) Serving(ctx context.Context) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.Target.Health.VersionURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// Scenario runs the demo on a stack: install 1.0 on the empty target,
// upgrade to 1.1 (it succeeds), upgrade to 1.2 (its verification fails, it
// rolls back) and check that 1.1 serves again. It returns an error if
// anything ended otherwise.
func (d *Demo) Scenario(ctx context.Context, s *Stack, out io.Writer) error {
	for _, step := range []struct {
		from, to string
		want     saga.State
		serving  string
	}{
		{"", "1.0", saga.StateSucceeded, `{"version":"1.0"}`},
		{"1.0", "1.1", saga.StateSucceeded, `{"version":"1.1"}`},
		{"1.1", "1.2", saga.StateRolledBack, `{"version":"1.1"}`},
	} {
		r := d.Request(step.from, step.to)
		path, err := d.WriteRequest(r, strings.ToLower(string(r.Kind))+"-"+step.to+".yaml")
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\nsubmitting %s (%s), expecting %s\n", r.Title(), path, strings.ReplaceAll(string(step.want), "_", " "))
		id, err := s.Client.Submit(ctx, r)
		if err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		end, err := view.Watch(wctx, s.JS, id, nil)
		cancel()
		if err != nil {
			return err
		}
		serving, err := d.Serving(ctx)
		if err != nil {
			return fmt.Errorf("after saga %s the target does not answer: %w", id, err)
		}
		fmt.Fprintf(out, "saga %s ended %s; the target serves %s\n", id, end.Kind, serving)
		if saga.State(end.Kind) != step.want || serving != step.serving {
			return fmt.Errorf("saga %s: ended %s serving %s, expected %s serving %s (see `upshift status %s`)",
				id, end.Kind, serving, step.want, step.serving, id)
		}
	}
	return nil
}

// Teardown stops the demo application.
func (d *Demo) Teardown(ctx context.Context) error {
	if d == nil {
		return nil
	}
	err := demo.Stop(ctx, d.Target)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return errors.Join(err, d.Dependency.Close())
}
