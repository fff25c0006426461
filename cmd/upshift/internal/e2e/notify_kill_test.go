package e2e_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/upshift/upshift/cmd/upshift/internal/demo"
	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/streams"
)

// slowHook is a webhook receiver that takes its time over each request and
// de-duplicates by webhook-id, as the convention asks of a receiver.
type slowHook struct {
	mu       sync.Mutex
	started  int
	requests map[string]int    // by webhook-id
	notices  map[string]string // webhook-id -> notice id, once processed
	inFlight chan struct{}
}

func (h *slowHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get("webhook-id")
	h.mu.Lock()
	h.started++
	h.requests[id]++
	h.mu.Unlock()
	select {
	case h.inFlight <- struct{}{}:
	default:
	}
	time.Sleep(300 * time.Millisecond) // the work; it goes on if the sender dies
	env, err := events.Decode(body)
	if err != nil || id == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	if _, dup := h.notices[id]; !dup {
		h.notices[id] = env.ID
	}
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (h *slowHook) snapshot() (processed map[string]string, requests map[string]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	processed, requests = map[string]string{}, map[string]int{}
	for k, v := range h.notices {
		processed[k] = v
	}
	for k, v := range h.requests {
		requests[k] = v
	}
	return processed, requests
}

// Notify killed while a receiver is working on a delivery, then started
// again: no notice is lost, and a receiver that drops repeats by webhook-id
// processes each notice once.
func TestNotifyKilledMidDeliveryLosesNoNotice(t *testing.T) {
	endToEnd(t)
	srv := natstest.Server(t)
	_, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := streams.Ensure(ctx, js, streams.Config{}, streams.All...); err != nil {
		t.Fatal(err)
	}
	hook := &slowHook{requests: map[string]int{}, notices: map[string]string{}, inFlight: make(chan struct{}, 1)}
	recv := httptest.NewServer(hook)
	t.Cleanup(recv.Close)

	dir := t.TempDir()
	routes, secret := hookRoutes(t, dir, recv.URL)
	bin := filepath.Join(binaries(t), "upshift-notify")
	start := func(n int) *exec.Cmd {
		port, err := demo.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		log, err := os.Create(filepath.Join(dir, fmt.Sprintf("notify-%d.log", n)))
		if err != nil {
			t.Fatal(err)
		}
		ops := fmt.Sprintf("127.0.0.1:%d", port)
		cmd := exec.Command(bin, "--nats-url", srv.URL(), "--ops-addr", ops, "--log-format", "text",
			"--instance", fmt.Sprintf("notify-%d@test", n), "--routes", routes,
			"--ack-wait", "2s", "--max-deliver", "10", "--retry-base", "100ms", "--retry-max", "1s")
		cmd.Env = append(os.Environ(), "UPSHIFT_TEST_HOOK_SECRET="+secret)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			log.Close()
			if t.Failed() {
				b, _ := os.ReadFile(log.Name())
				t.Logf("notify %d log:\n%s", n, b)
			}
		})
		natstest.Eventually(t, 30*time.Second, "notify ready", func() bool {
			resp, err := http.Get("http://" + ops + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		return cmd
	}

	first := start(1)
	const sagas = 12
	for i := range sagas {
		saga := fmt.Sprintf("k%02d", i)
		ev := events.SagaEvent{Saga: saga, Kind: "succeeded", State: "succeeded", Seq: 1, Team: "billing",
			Teams: []string{"billing"}, Software: "billing", From: "1.0", To: "1.1"}
		env, err := events.New(events.SagaEventID(saga, 1, 0, ev.Kind), events.TypeSaga, "upshift/coordinator", saga, 0, time.Now(), ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.Publish(ctx, js, events.SagaSubject(saga, ev.Kind), env); err != nil {
			t.Fatal(err)
		}
	}
	// Let a few through, then kill it while the receiver works on one.
	natstest.Eventually(t, time.Minute, "three notices processed", func() bool {
		p, _ := hook.snapshot()
		return len(p) >= 3
	})
	<-hook.inFlight // drop a stale signal
	select {
	case <-hook.inFlight:
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery in flight")
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	start(2)

	var processed map[string]string
	var requests map[string]int
	natstest.Eventually(t, time.Minute, "every notice processed", func() bool {
		processed, requests = hook.snapshot()
		return len(processed) >= sagas
	})
	time.Sleep(time.Second) // anything still to come would come now
	processed, requests = hook.snapshot()
	notices := map[string]bool{}
	for _, n := range processed {
		if notices[n] {
			t.Errorf("notice %s processed under two webhook-ids", n)
		}
		notices[n] = true
	}
	for i := range sagas {
		if n := events.SagaEventID(fmt.Sprintf("k%02d", i), 1, 0, "succeeded") + "/billing"; !notices[n] {
			t.Errorf("notice %s lost", n)
		}
	}
	if len(processed) != sagas {
		t.Errorf("%d notices processed, want %d", len(processed), sagas)
	}
	repeated := 0
	for _, n := range requests {
		if n > 1 {
			repeated++
		}
	}
	// The one in flight at the kill was delivered again under its id, and
	// dropped by the receiver.
	if repeated == 0 {
		t.Errorf("no notice delivered twice: was notify killed mid-delivery? requests %v", requests)
	}
}

// hookRoutes writes, in dir, notify routes sending every team's notices to
// one signed webhook at url, and returns the file and the webhook's secret,
// which notify reads from UPSHIFT_TEST_HOOK_SECRET.
func hookRoutes(t *testing.T, dir, url string) (routes, secret string) {
	t.Helper()
	routes = filepath.Join(dir, "notify.yaml")
	if err := os.WriteFile(routes, fmt.Appendf(nil, `channels:
  hook:
    webhook: {url: %q, secret: {env: UPSHIFT_TEST_HOOK_SECRET}, timeout: 5s}
routes:
  - teams: ["*"]
    channels: [hook]
`, url), 0o600); err != nil {
		t.Fatal(err)
	}
	return routes, "whsec_" + base64.StdEncoding.EncodeToString([]byte("a key of the test hook, 32 bytes"))
}
