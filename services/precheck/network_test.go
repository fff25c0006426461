package precheck_test

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/targets"
)

func TestTCPEndpoints(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	closed := closedPort(t)
	out := checked(t, targets.Precheck{Endpoints: []targets.EndpointCheck{
		{Name: "db", Address: ln.Addr().String()},
		{Address: closed, Timeout: targets.Duration{Duration: time.Second}},
	}})
	if got := lines(out.Report); got != "free disk=ok, tcp db=ok, tcp "+closed+"=FAIL, installed version=ok" {
		t.Fatalf("report %s", got)
	}
	if l := line(t, out, "tcp db"); l.LineStatus() != events.CheckPass || l.Threshold != "connects within 10s" {
		t.Fatalf("listening: %+v", l)
	}
	if l := line(t, out, "tcp "+closed); l.LineStatus() != events.CheckFail || l.Detail != "connect to "+closed+": connect: connection refused" {
		t.Fatalf("closed: %+v", l)
	}
	if out.Error != "1 check failed: tcp "+closed+": connect to "+closed+": connect: connection refused" {
		t.Fatalf("error %q", out.Error)
	}
}

// trickle serves n bytes, in pieces, pausing between them.
func trickle(n int, pause time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		piece := bytes.Repeat([]byte("x"), 1<<10)
		for sent := 0; sent < n && r.Context().Err() == nil; sent += len(piece) {
			w.Write(piece)
			w.(http.Flusher).Flush()
			time.Sleep(pause)
		}
	}
}

func TestBandwidth(t *testing.T) {
	t.Parallel()
	fast := httptest.NewServer(trickle(4<<20, 0))
	t.Cleanup(fast.Close)
	slow := httptest.NewServer(trickle(1<<20, 50*time.Millisecond))
	t.Cleanup(slow.Close)
	second := targets.Duration{Duration: time.Second}
	for _, c := range []struct {
		name   string
		b      targets.BandwidthCheck
		status events.CheckStatus
		says   string
	}{
		{"fast enough", targets.BandwidthCheck{URL: fast.URL, MinRate: 1 << 20}, events.CheckPass, "4.0MiB in"},
		{"bounded download", targets.BandwidthCheck{URL: fast.URL, MinRate: 1 << 10, MaxBytes: 1 << 20}, events.CheckPass, "1.0MiB in"},
		{"too slow", targets.BandwidthCheck{URL: fast.URL, MinRate: 1 << 50}, events.CheckFail, "need 1024.0TiB/s"},
		{"cut by its time-out, measured", targets.BandwidthCheck{URL: slow.URL, MinRate: 1 << 20, Timeout: second}, events.CheckFail, "/s, need 1.0MiB/s"},
		{"unreachable", targets.BandwidthCheck{URL: "http://" + closedPort(t), MinRate: 1}, events.CheckFail, "connection refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			expect(t, checked(t, targets.Precheck{Bandwidth: &c.b}), "bandwidth", c.status, c.says)
		})
	}
}
