package httpapi_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
)

// newChromium starts a headless Debian chromium for the test. Without one
// the test fails: .ci/run installs it.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the browser test needs Debian's chromium: apt-get install chromium (.ci/run does): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		// As root in a container chromium has no sandbox to use, and
		// /dev/shm is often small.
		chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelCtx := chromedp.NewContext(actx)
	// The first call starts the browser for as long as its context lives:
	// the test's actions get a bounded context of their own.
	if err := chromedp.Do(bctx); err != nil {
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancelTime := context.WithTimeout(bctx, 3*time.Minute)
	t.Cleanup(func() { cancelTime(); cancelCtx(); cancelAlloc() })
	return ctx
}

// What a person does in a browser: sign in, open the list, open a saga
// waiting for its DBA's confirmation, confirm, approve it, and watch its
// page follow it to its end without reloading it by hand.
func TestUIInABrowser(t *testing.T) {
	w := newWorld(t, nil)
	c := &client{t: t, url: "http://" + w.http}
	req := request("dba", "production", "db")
	req.Spec.Confirm = &spec.Confirm{Roles: []string{"dba"}}
	id := w.submit(req)
	c.waitFor(id, natstest.Patience, saga.StateAwaitingConfirmation)
	ctx := newChromium(t)
	base := "http://" + w.http

	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/ui/login"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), token),
		chromedp.Click(chromedp.CSS(`#signin`)),
		chromedp.WaitVisible(chromedp.CSS(`#sagas`)),
	)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	list := text(ctx, t, `#sagas`)
	if !strings.Contains(list, id) || !strings.Contains(list, "awaiting_confirmation") {
		t.Fatalf("the list does not show %s awaiting confirmation:\n%s", id, list)
	}

	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`a[href="/ui/sagas/`+id+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm`)),
	)
	if err != nil {
		t.Fatalf("open the saga: %v", err)
	}
	if who := text(ctx, t, `#who`); who != "signed in as api-token" {
		t.Fatalf("signed in as %q", who)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#confirm-role`), "dba"),
		chromedp.SendKeys(chromedp.CSS(`#confirm-by`), "dora"),
		chromedp.SendKeys(chromedp.CSS(`#confirm-comment`), "on call"),
		chromedp.Click(chromedp.CSS(`#confirm`)),
		chromedp.WaitVisible(chromedp.CSS(`#done`)),
	)
	if err != nil {
		t.Fatalf("confirm: %v", err)
	}
	// The page follows the saga to its approval by itself.
	natstest.Eventually(t, natstest.Patience, "the approve button", func() bool {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#approve").length`))
		return err == nil && n == 1
	})
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#actor`), "carol"),
		chromedp.SendKeys(chromedp.CSS(`#comment`), "CAB-42"),
		chromedp.Click(chromedp.CSS(`#approve`)),
		chromedp.WaitVisible(chromedp.CSS(`#done`)),
	)
	if err != nil {
		t.Fatalf("approve: %v", err)
	}

	// The page is left alone: its script must bring the new states.
	// The script replaces the part the state is in, or reloads the page,
	// at any moment: read it in one evaluation, and a read that meets a
	// reload is tried again.
	var state string
	natstest.Eventually(t, natstest.Patience, "the page to show "+id+" succeeded", func() bool {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById("state") || {}).textContent || ""`))
		if err == nil {
			state = s
		} else if ctx.Err() != nil {
			t.Fatalf("read the state: %v", err)
		}
		return state == string(saga.StateSucceeded)
	})
	location, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatalf("location: %v", err)
	}
	if location != base+"/ui/sagas/"+id+"?done=approve" {
		t.Fatalf("the page went to %s", location)
	}
	timeline := text(ctx, t, `#timeline`)
	for _, want := range []string{"awaiting_confirmation", "dora", "awaiting_approval", "approved", "carol: CAB-42", "backing_up", "succeeded"} {
		if !strings.Contains(timeline, want) {
			t.Fatalf("the timeline lacks %q:\n%s", want, timeline)
		}
	}
	got := c.waitFor(id, natstest.Patience, saga.StateSucceeded)
	if got.Saga.Approval == nil || got.Saga.Approval.Actor != "carol" {
		t.Fatalf("approval %+v", got.Saga.Approval)
	}
	if cs := got.Saga.Confirmations; len(cs) != 1 || cs[0].Role != "dba" || cs[0].By != "dora" || cs[0].Comment != "on call" {
		t.Fatalf("confirmations %+v", cs)
	}

	// The saga's page has an h1 too: wait for the report's address, then
	// read its heading in one evaluation (a node found on the page being
	// left is gone by the time its text is asked for).
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#report`))); err != nil {
		t.Fatalf("open the report: %v", err)
	}
	var heading string
	natstest.Eventually(t, natstest.Patience, "the report's heading", func() bool {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil || loc != base+"/ui/sagas/"+id+"/report" {
			return false
		}
		h, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("h1") || {}).textContent || ""`))
		heading = h
		return err == nil && h != ""
	})
	if !strings.Contains(strings.ToLower(heading), "report") {
		t.Fatalf("the report's heading: %q", heading)
	}
}

// text is the visible text of the first element sel selects, once there.
func text(ctx context.Context, t *testing.T, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}
