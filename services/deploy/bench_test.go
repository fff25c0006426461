package deploy_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/upshift/upshift/pkg/artifact"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/deploy"
)

// BenchmarkApplyManySmallFiles installs a package of 10,000 small files in
// 100 directories, from staging to a durable release in place: what bounds
// the deploy deadline of a package near the file-count limit.
func BenchmarkApplyManySmallFiles(b *testing.B) {
	const dirs, perDir = 100, 100
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for d := range dirs {
		name := fmt.Sprintf("lib/d%03d/", d)
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			b.Fatal(err)
		}
		for f := range perDir {
			body := fmt.Appendf(nil, "file %d of %d\n", f, d)
			if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%sf%03d.txt", name, f), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
				b.Fatal(err)
			}
			tw.Write(body)
		}
	}
	tw.Close()
	gz.Close()
	dir := b.TempDir()
	pkg := filepath.Join(dir, "app.tar.gz")
	if err := os.WriteFile(pkg, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	digest := "sha256:" + hex.EncodeToString(sum[:])
	store := &artifact.Store{Dir: filepath.Join(dir, "store")}
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		root := filepath.Join(dir, fmt.Sprint("web-", i))
		reg, err := targets.New(map[string]targets.Target{"web-1": {Root: root}}, dir)
		if err != nil {
			b.Fatal(err)
		}
		x := &deploy.Executor{Targets: reg, Artifacts: store}
		b.StartTimer()
		out, err := x.Execute(context.Background(), events.Command{Step: "s.deploy.apply.web-1.1", Saga: "s",
			Phase: events.Deploy, Action: events.ActionApply, Target: "web-1", Attempt: 1,
			Upgrade: events.Upgrade{Kind: "Upgrade", Software: "app", To: "1.0",
				Artifact: events.Artifact{URL: "file://" + pkg, Digest: digest}}}, func(string) {})
		if err != nil || out.Failed {
			b.Fatalf("outcome %+v, err %v", out, err)
		}
	}
	b.ReportMetric(float64(dirs*perDir), "files/op")
}
