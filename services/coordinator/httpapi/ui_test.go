package httpapi_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/httpapi"
)

// browser is an HTTP client that keeps cookies and does not follow
// redirects, so that a test sees each answer.
type browser struct {
	t   *testing.T
	url string
	c   *http.Client
}

func newBrowser(t *testing.T, b httpapi.Backend, cfg httpapi.Config) *browser {
	t.Helper()
	s := httptest.NewServer(httpapi.New(b, cfg, quiet))
	t.Cleanup(s.Close)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, url: s.URL, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request with the headers given as name, value pairs; a form,
// if not nil, is the body. The answer must be HTML.
func (b *browser) do(method, path string, form url.Values, headers ...string) (int, http.Header, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.url+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusSeeOther && ct != "text/html; charset=utf-8" {
		b.t.Fatalf("%s %s: Content-Type %q: %s", method, path, ct, raw)
	}
	return resp.StatusCode, resp.Header, string(raw)
}

// signIn signs in with token through the form and checks the cookie.
func (b *browser) signIn(token string) {
	b.t.Helper()
	code, h, body := b.do(http.MethodPost, "/ui/login", url.Values{"token": {token}, "next": {"/ui/sagas/s1"}})
	if code != http.StatusSeeOther || h.Get("Location") != "/ui/sagas/s1" {
		b.t.Fatalf("sign in: %d to %q: %s", code, h.Get("Location"), body)
	}
	c := h.Get("Set-Cookie")
	for _, want := range []string{"upshift_token=", "HttpOnly", "SameSite=Strict", "Path=/ui/"} {
		if !strings.Contains(c, want) {
			b.t.Fatalf("cookie %q lacks %s", c, want)
		}
	}
	if strings.Contains(c, token) {
		b.t.Fatalf("cookie %q holds the token as it is", c)
	}
}

// waiting is a production saga waiting for an approval, named with
// markup that must come out as text.
func waiting(id string) api.View {
	v := view(id, saga.StateAwaitingApproval, 3)
	v.Saga.Request = request("dba", "production", "db")
	v.Saga.Request.Metadata.Name = `<script>alert("owned")</script>`
	v.Saga.Reason = `waiting for "approval" & <b>more</b>`
	return v
}

// Everything a request says is text on the page: markup is escaped, in
// the list, on the saga's page, in its plan and report (these two do
// not show the name: that no markup passes).
func TestUIEscapes(t *testing.T) {
	t.Parallel()
	b := newBrowser(t, newBackend(waiting("s1")), httpapi.Config{Token: token})
	for _, p := range []string{"/ui/", "/ui/sagas/s1", "/ui/sagas/s1/live", "/ui/sagas/s1/plan", "/ui/sagas/s1/report"} {
		code, h, body := b.do(http.MethodGet, p, nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, code, body)
		}
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<b>more") {
			t.Fatalf("GET %s: markup from the request is not escaped:\n%s", p, body)
		}
		if (p == "/ui/" || p == "/ui/sagas/s1") && !strings.Contains(body, "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;") {
			t.Fatalf("GET %s: the name is not shown escaped:\n%s", p, body)
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || h.Get("X-Frame-Options") != "DENY" {
			t.Fatalf("GET %s: headers %v", p, h)
		}
	}
}

// Unknown sagas and pages are 404 pages; a bad id or filter, a 400 that
// says why; the JSON API keeps its own 404.
func TestUINotFoundAndBadInput(t *testing.T) {
	t.Parallel()
	b := newBrowser(t, newBackend(waiting("s1")), httpapi.Config{Token: token})
	for _, tc := range []struct {
		path string
		code int
		says string
	}{
		{"/ui/sagas/nope", http.StatusNotFound, "saga not found"},
		{"/ui/sagas/nope/plan", http.StatusNotFound, "saga not found"},
		{"/ui/sagas/nope/report", http.StatusNotFound, "saga not found"},
		{"/ui/no/such/page", http.StatusNotFound, "no such page"},
		{"/ui/sagas/bad%20id", http.StatusBadRequest, "letters, digits"},
		{"/ui/sagas/s1/plan?lang=fr", http.StatusBadRequest, "en or zh"},
		{"/ui/?state=sleeping", http.StatusBadRequest, "not a saga state"},
		{"/ui/?colour=blue", http.StatusBadRequest, "unknown parameter"},
	} {
		code, _, body := b.do(http.MethodGet, tc.path, nil)
		if code != tc.code || !strings.Contains(body, tc.says) {
			t.Fatalf("GET %s: %d, want %d saying %q:\n%s", tc.path, code, tc.code, tc.says, body)
		}
	}
}

// The list's form sends every field, empty or not: empty means any, the
// rest are the JSON API's filters.
func TestUIListFilters(t *testing.T) {
	t.Parallel()
	be := newBackend(waiting("s1"), view("s2", saga.StateSucceeded, 9))
	b := newBrowser(t, be, httpapi.Config{Token: token})
	code, _, body := b.do(http.MethodGet, "/ui/?state=awaiting_approval&team=&environment=production&software=+&active=true", nil)
	if code != http.StatusOK || !strings.Contains(body, `href="/ui/sagas/s1"`) || !strings.Contains(body, `href="/ui/sagas/s2"`) {
		t.Fatalf("list: %d\n%s", code, body)
	}
	f := be.listed()
	if len(f) != 1 || !slices.Equal(f[0].States, []saga.State{saga.StateAwaitingApproval}) || f[0].Environment != "production" ||
		f[0].Team != "" || f[0].Software != "" || !f[0].Active {
		t.Fatalf("filters %+v", f)
	}
	if !strings.Contains(body, `<option value="awaiting_approval" selected>`) || !strings.Contains(body, `value="production"`) {
		t.Fatalf("the form does not keep the filters:\n%s", body)
	}
}

// The page's rights are the JSON API's: with named tokens every page needs
// the read role and each decision its own, the actor being the token's
// name; with the single token reads are open and the form names the actor;
// with none, decisions are refused.
func TestUIRights(t *testing.T) {
	t.Parallel()
	tokens := loadTokens(t)
	for _, tc := range []struct {
		name    string
		cfg     httpapi.Config
		signIn  string
		form    url.Values
		read    int // GET /ui/sagas/s1
		approve int // POST /ui/sagas/s1/approve
		cancel  int
		actor   string // of the decisions accepted
	}{
		{"named, nobody", httpapi.Config{Tokens: tokens}, "", nil, 401, 401, 401, ""},
		{"named, reader", httpapi.Config{Tokens: tokens}, named["rita"], nil, 200, 403, 403, ""},
		{"named, approver", httpapi.Config{Tokens: tokens}, named["alice"], nil, 403, 303, 403, "alice"},
		{"named, operator", httpapi.Config{Tokens: tokens}, named["oscar"], nil, 403, 403, 303, "oscar"},
		{"named, another actor", httpapi.Config{Tokens: tokens}, named["root"], url.Values{"actor": {"alice"}}, 200, 403, 403, ""},
		{"single, nobody", httpapi.Config{Token: token}, "", url.Values{"actor": {"carol"}}, 200, 401, 401, ""},
		{"single, no actor", httpapi.Config{Token: token}, token, nil, 200, 400, 400, ""},
		{"single, actor", httpapi.Config{Token: token}, token, url.Values{"actor": {"carol"}}, 200, 303, 303, "carol"},
		{"none", httpapi.Config{}, "", url.Values{"actor": {"carol"}}, 200, 403, 403, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := newBackend(waiting("s1"))
			b := newBrowser(t, be, tc.cfg)
			if tc.signIn != "" {
				b.signIn(tc.signIn)
			}
			if code, _, body := b.do(http.MethodGet, "/ui/sagas/s1", nil); code != tc.read {
				t.Fatalf("read: %d, want %d\n%s", code, tc.read, body)
			}
			form := tc.form
			if form == nil {
				form = url.Values{}
			}
			form.Set("comment", "CAB-7")
			for op, want := range map[string]int{"approve": tc.approve, "cancel": tc.cancel} {
				code, h, body := b.do(http.MethodPost, "/ui/sagas/s1/"+op, form)
				if code != want {
					t.Fatalf("%s: %d, want %d\n%s", op, code, want, body)
				}
				if code == http.StatusSeeOther && h.Get("Location") != "/ui/sagas/s1?done="+op {
					t.Fatalf("%s: to %q", op, h.Get("Location"))
				}
			}
			for _, d := range be.decisions() {
				if d.Actor != tc.actor || d.Comment != "CAB-7" || d.ID != "s1" {
					t.Fatalf("decision %+v, want actor %q", d, tc.actor)
				}
			}
			wantOps := 0
			for _, c := range []int{tc.approve, tc.cancel} {
				if c == http.StatusSeeOther {
					wantOps++
				}
			}
			if len(be.decisions()) != wantOps {
				t.Fatalf("decisions %+v, want %d", be.decisions(), wantOps)
			}
		})
	}
}

// A form sent from another origin is refused before it reaches the
// backend, whatever the cookie.
func TestUIRefusesCrossOriginForms(t *testing.T) {
	t.Parallel()
	be := newBackend(waiting("s1"))
	b := newBrowser(t, be, httpapi.Config{Token: token})
	b.signIn(token)
	form := url.Values{"actor": {"carol"}}
	for _, h := range [][]string{
		{"Sec-Fetch-Site", "cross-site"},
		{"Origin", "http://evil.example"},
	} {
		code, _, body := b.do(http.MethodPost, "/ui/sagas/s1/approve", form, h...)
		if code != http.StatusForbidden || !strings.Contains(body, "own origin") {
			t.Fatalf("%v: %d\n%s", h, code, body)
		}
	}
	if code, _, body := b.do(http.MethodPost, "/ui/logout", nil, "Origin", "http://evil.example"); code != http.StatusForbidden {
		t.Fatalf("logout from elsewhere: %d\n%s", code, body)
	}
	if d := be.decisions(); len(d) != 0 {
		t.Fatalf("decided %+v", d)
	}
	if code, _, body := b.do(http.MethodPost, "/ui/sagas/s1/approve", form, "Origin", b.url, "Sec-Fetch-Site", "same-origin"); code != http.StatusSeeOther {
		t.Fatalf("same origin: %d\n%s", code, body)
	}
}

// Signing in: a wrong token is a 401 and no cookie; the page never shows
// the token; a redirect after it stays on this page; signing out forgets it.
func TestUISignIn(t *testing.T) {
	t.Parallel()
	b := newBrowser(t, newBackend(waiting("s1")), httpapi.Config{Token: token})
	code, h, body := b.do(http.MethodPost, "/ui/login", url.Values{"token": {"wrong"}})
	if code != http.StatusUnauthorized || h.Get("Set-Cookie") != "" || !strings.Contains(body, "not valid") {
		t.Fatalf("wrong token: %d %v\n%s", code, h, body)
	}
	for _, next := range []string{"//evil.example/ui/", "https://evil.example/ui/", "/v1/sagas", "/ui/\\evil"} {
		code, h, _ := b.do(http.MethodPost, "/ui/login", url.Values{"token": {token}, "next": {next}})
		if code != http.StatusSeeOther || h.Get("Location") != "/ui/" {
			t.Fatalf("next %q: %d to %q", next, code, h.Get("Location"))
		}
	}
	if _, h, _ := b.do(http.MethodPost, "/ui/login", url.Values{"token": {token}}, "X-Forwarded-Proto", "https"); !strings.Contains(h.Get("Set-Cookie"), "Secure") {
		t.Fatalf("behind a TLS proxy the cookie is not Secure: %q", h.Get("Set-Cookie"))
	}
	b.signIn(token)
	for _, p := range []string{"/ui/", "/ui/sagas/s1", "/ui/login"} {
		_, _, body := b.do(http.MethodGet, p, nil)
		if strings.Contains(body, token) {
			t.Fatalf("GET %s shows the token:\n%s", p, body)
		}
		if !strings.Contains(body, "signed in as api-token") {
			t.Fatalf("GET %s: not signed in:\n%s", p, body)
		}
	}
	if _, _, body := b.do(http.MethodGet, "/ui/sagas/s1", nil); !strings.Contains(body, `id="approve"`) || !strings.Contains(body, `id="actor"`) {
		t.Fatalf("no approve button or actor field:\n%s", body)
	}
	if code, _, _ := b.do(http.MethodPost, "/ui/logout", url.Values{}); code != http.StatusSeeOther {
		t.Fatalf("sign out: %d", code)
	}
	if _, _, body := b.do(http.MethodGet, "/ui/sagas/s1", nil); strings.Contains(body, "signed in") || strings.Contains(body, `id="approve"`) {
		t.Fatalf("still signed in:\n%s", body)
	}
}

// The confirm form shows only while the saga waits for confirmations; its
// POST is the backend's confirmation of that role, by that person.
func TestUIConfirmForm(t *testing.T) {
	t.Parallel()
	c := waiting("c1")
	c.Saga.State = "awaiting_confirmation"
	be := newBackend(waiting("s1"), c)
	b := newBrowser(t, be, httpapi.Config{Token: token})
	b.signIn(token)
	if _, _, body := b.do(http.MethodGet, "/ui/sagas/s1", nil); strings.Contains(body, "confirm-form") {
		t.Fatalf("confirm form while awaiting approval:\n%s", body)
	}
	if _, _, body := b.do(http.MethodGet, "/ui/sagas/c1", nil); !strings.Contains(body, `action="/ui/sagas/c1/confirm"`) {
		t.Fatalf("no confirm form:\n%s", body)
	}
	code, _, body := b.do(http.MethodPost, "/ui/sagas/c1/confirm", url.Values{"role": {"dba"}})
	if code != http.StatusBadRequest || !strings.Contains(body, "role and by are required") {
		t.Fatalf("confirm without by: %d\n%s", code, body)
	}
	code, _, body = b.do(http.MethodPost, "/ui/sagas/c1/confirm", url.Values{"role": {"dba"}, "by": {"dora"}, "comment": {"on call"}})
	if code != http.StatusSeeOther {
		t.Fatalf("confirm: %d\n%s", code, body)
	}
	d := be.decisions()
	if len(d) != 1 || d[0].Op != events.OpConfirm || d[0].ID != "c1" || d[0].Role != "dba" || d[0].Actor != "dora" || d[0].Comment != "on call" {
		t.Fatalf("decisions %+v", d)
	}
}

// A finished saga has no buttons; its page does not poll; its decisions
// are shown; a decision on it is the backend's 409, as a page.
func TestUIFinishedSaga(t *testing.T) {
	t.Parallel()
	v := waiting("s1")
	v.Saga.State = saga.StateRejected
	v.Saga.Rejection = &saga.Decision{Actor: "carol", Comment: "not <now>"}
	v.Saga.Steps = []*saga.Step{{ID: "p1", Phase: events.Precheck, Action: events.ActionCheck, Target: "a", Status: saga.StepSucceeded,
		Report: []events.ReportLine{{Name: "disk", OK: true, Value: "12 GiB", Threshold: ">= 1 GiB"}}}}
	b := newBrowser(t, newBackend(v), httpapi.Config{Token: token})
	b.signIn(token)
	_, _, body := b.do(http.MethodGet, "/ui/sagas/s1", nil)
	for _, want := range []string{`data-terminal="true"`, "Rejected by carol", "not &lt;now&gt;", "disk: 12 GiB (&gt;= 1 GiB)"} {
		if !strings.Contains(body, want) {
			t.Fatalf("page lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, `id="actions"`) {
		t.Fatalf("buttons on a finished saga:\n%s", body)
	}
	code, _, body := b.do(http.MethodPost, "/ui/sagas/s1/cancel", url.Values{"actor": {"carol"}})
	if code != http.StatusConflict || !strings.Contains(body, "saga is rejected") {
		t.Fatalf("cancel a finished saga: %d\n%s", code, body)
	}
}
