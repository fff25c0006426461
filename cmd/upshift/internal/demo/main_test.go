package demo_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/upshift/upshift/cmd/upshift/internal/demo"
)

// Each version is built once for the whole package, into a directory that
// outlives the single tests.
var (
	buildDir string
	builds   = sync.OnceValues(buildBoth)
)

// bins are the built apps and their packages.
type bins struct {
	healthy11, unhealthy12 string
	pkg11, pkg12           demo.Artifact
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "demo-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildBoth() (bins, error) {
	var b bins
	var err11, err12 error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		b.healthy11, err11 = demo.BuildApp(context.Background(), buildDir, "1.1", true)
	}()
	go func() {
		defer wg.Done()
		b.unhealthy12, err12 = demo.BuildApp(context.Background(), buildDir, "1.2", false)
	}()
	wg.Wait()
	if err := errors.Join(err11, err12); err != nil {
		return b, err
	}
	// Packed once too: gzip is slow under -race.
	var err error
	if b.pkg11, err = demo.Package(filepath.Join(buildDir, "artifacts"), "1.1", b.healthy11); err != nil {
		return b, err
	}
	b.pkg12, err = demo.Package(filepath.Join(buildDir, "artifacts"), "1.2", b.unhealthy12)
	return b, err
}

// builtApps returns the built apps; a test that needs them is long, and
// skipped under -short.
func builtApps(t *testing.T) bins {
	t.Helper()
	if testing.Short() {
		t.Skip("long: builds the demo application")
	}
	b, err := builds()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// alive reports whether pid runs; a zombie counts as gone, as its parent may
// be an init that does not reap.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := demo.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
