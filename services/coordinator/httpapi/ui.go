package httpapi

import (
	"bytes"
	"context"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// The web page is server-rendered HTML under /ui/: its templates, style
// sheet and the small script that keeps a saga's page live are embedded,
// so it needs no build step and no network but the coordinator's.
//
//go:embed ui
var uiFiles embed.FS

// uiCSP allows the page its own style sheet and script and nothing else:
// no inline script, no other origin, no framing (the buttons decide).
const uiCSP = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ui renders the web page's templates.
type ui struct {
	pages map[string]*template.Template
}

func newUI() *ui {
	funcs := template.FuncMap{
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"took":     stepTook,
		"terminal": func(st saga.State) bool { return st.Terminal() },
	}
	u := &ui{pages: map[string]*template.Template{}}
	for _, name := range []string{"list", "saga", "message", "login"} {
		u.pages[name] = template.Must(template.New(name+".tmpl").Funcs(funcs).
			ParseFS(uiFiles, "ui/"+name+".tmpl", "ui/layout.tmpl", "ui/live.tmpl"))
	}
	return u
}

// stepTook is how long a step ran, or has run so far.
func stepTook(st saga.Step) string {
	from := st.StartedAt
	if from.IsZero() {
		from = st.DispatchedAt
	}
	if from.IsZero() {
		return "-"
	}
	if st.FinishedAt.IsZero() {
		return "running"
	}
	if st.FinishedAt.Before(from) {
		return "-"
	}
	return st.FinishedAt.Sub(from).Round(time.Millisecond).String()
}

// page is what every page's layout needs.
type page struct {
	Title string
	// Who is signed in ("" if nobody), and whether there is a token to sign
	// in with at all.
	Who      string
	Tokens   bool
	Content  any
	Status   int
	Messages []string
}

// render writes a whole page, or only template name of it (the live part).
func (s *server) render(w http.ResponseWriter, r *http.Request, name, tmpl string, code int, p page) {
	if who, ok := s.uiCaller(r); ok {
		p.Who = who.String()
	}
	p.Tokens, p.Status = len(s.known.hashes) > 0, code
	var b bytes.Buffer
	if err := s.ui.pages[name].ExecuteTemplate(&b, tmpl, p); err != nil {
		s.log.ErrorContext(r.Context(), "web page not rendered", "page", name, "err", err)
		code, b = http.StatusInternalServerError, *bytes.NewBufferString("the page could not be rendered\n")
	}
	htmlHeaders(w, uiCSP)
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

func htmlHeaders(w http.ResponseWriter, csp string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", csp)
}

// message answers with a page that says one thing, with the status.
func (s *server) message(w http.ResponseWriter, r *http.Request, code int, title string, lines ...string) {
	s.render(w, r, "message", "layout", code, page{Title: title, Messages: lines})
}

// uiFail answers an error of the backend as the JSON API does, as a page.
func (s *server) uiFail(w http.ResponseWriter, r *http.Request, err error) int {
	code, msg := api.Code(err), err.Error()
	if code == http.StatusInternalServerError {
		s.log.LogAttrs(r.Context(), slog.LevelError, "web page failed", slog.String("path", r.URL.Path),
			slog.String("saga", r.PathValue("id")), slog.Any("err", err))
		msg = api.InternalError
	}
	s.message(w, r, code, http.StatusText(code), msg)
	return code
}

// uiRoutes adds the web page's routes to mux. Its POSTs are refused from
// other origins (http.CrossOriginProtection: Sec-Fetch-Site, else Origin),
// and its cookie is SameSite=Strict.
func (s *server) uiRoutes(mux *http.ServeMux) {
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.WarnContext(r.Context(), "cross-origin web form refused", "path", r.URL.Path, "remote", r.RemoteAddr)
		s.message(w, r, http.StatusForbidden, "Forbidden", "a form of this page may only be sent from this page's own origin")
	}))
	post := func(h http.HandlerFunc) http.Handler { return csrf.Handler(h) }
	assets, _ := fs.Sub(uiFiles, "ui/assets")
	mux.Handle("GET /ui/assets/", http.StripPrefix("/ui/assets/", http.FileServerFS(assets)))
	mux.HandleFunc("GET /ui/{$}", s.uiRead(s.uiList))
	mux.HandleFunc("GET /ui/sagas/{id}", s.uiRead(s.uiSaga))
	mux.HandleFunc("GET /ui/sagas/{id}/live", s.uiRead(s.uiLive))
	mux.HandleFunc("GET /ui/sagas/{id}/plan", s.uiRead(s.uiPaper(planDoc)))
	mux.HandleFunc("GET /ui/sagas/{id}/report", s.uiRead(s.uiPaper(reportDoc)))
	mux.Handle("POST /ui/sagas/{id}/approve", post(s.uiDecide(opApprove)))
	mux.Handle("POST /ui/sagas/{id}/reject", post(s.uiDecide(opReject)))
	mux.Handle("POST /ui/sagas/{id}/cancel", post(s.uiDecide(opCancel)))
	mux.Handle("POST /ui/sagas/{id}/confirm", post(s.uiDecide(opConfirm)))
	mux.HandleFunc("GET /ui/login", s.uiLoginPage)
	mux.Handle("POST /ui/login", post(s.uiLogin))
	mux.Handle("POST /ui/logout", post(s.uiLogout))
	mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		s.message(w, r, http.StatusNotFound, "Not found", "no such page: "+r.URL.Path)
	})
}

// listPage is the list's content.
type listPage struct {
	States     []saga.State
	Query      url.Values
	Sagas      []sagastore.Summary
	Unreadable []string
	Error      string
}

// uiList lists the sagas, newest first, with the JSON API's filters. The
// form sends its empty fields too: they mean "any".
func (s *server) uiList(w http.ResponseWriter, r *http.Request) {
	q := url.Values{}
	for k, vs := range r.URL.Query() {
		for _, v := range vs {
			if v = strings.TrimSpace(v); v != "" {
				q.Add(k, v)
			}
		}
	}
	lp := listPage{States: saga.States, Query: q}
	f, err := parseFilter(q)
	if err != nil {
		lp.Error = err.Error()
		s.render(w, r, "list", "layout", http.StatusBadRequest, page{Title: "Sagas", Content: lp})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	reply, err := s.b.List(ctx, f)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	lp.Sagas, lp.Unreadable = reply.Sagas, reply.Unreadable
	s.render(w, r, "list", "layout", http.StatusOK, page{Title: "Sagas", Content: lp})
}

// sagaPage is a saga's content.
type sagaPage struct {
	Saga     saga.Saga
	Revision sagastore.Revision
	Timeline []TimelineItem
	// Done is the decision just accepted, from the redirect after it.
	Done string
	// Writes: a token is configured; Approve: the caller may approve or
	// reject, Operate: cancel, MayConfirm: confirm a role; NeedActor: the
	// caller's token has no name, so the forms ask for one. Confirm: the
	// saga waits for confirmations.
	Writes, Approve, Operate, MayConfirm, NeedActor bool
	Confirm                                         bool
}

func (s *server) loadSaga(w http.ResponseWriter, r *http.Request) (sagaPage, bool) {
	id, err := sagaID(r)
	if err != nil {
		s.uiFail(w, r, err)
		return sagaPage{}, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	v, err := s.b.Get(ctx, id)
	if err != nil {
		s.uiFail(w, r, err)
		return sagaPage{}, false
	}
	hist, err := s.b.History(ctx, id)
	if err != nil {
		s.uiFail(w, r, err)
		return sagaPage{}, false
	}
	sp := sagaPage{Saga: v.Saga, Revision: v.Revision, Timeline: s.timeline(ctx, id, hist)}
	sp.Writes = len(s.known.hashes) > 0
	if who, ok := s.uiCaller(r); ok {
		sp.Approve, sp.Operate, sp.NeedActor = who.has(RoleApprove), who.has(RoleOperate), who.name == ""
		sp.MayConfirm = who.has(RoleConfirm)
	}
	sp.Confirm = v.Saga.State == saga.StateAwaitingConfirmation
	return sp, true
}

func (s *server) uiSaga(w http.ResponseWriter, r *http.Request) {
	sp, ok := s.loadSaga(w, r)
	if !ok {
		return
	}
	if d := r.URL.Query().Get("done"); slices.Contains([]string{"approve", "reject", "cancel", "confirm"}, d) {
		sp.Done = d
	}
	s.render(w, r, "saga", "layout", http.StatusOK, page{Title: "Saga " + sp.Saga.ID, Content: sp})
}

// uiLive is the part of a saga's page its script refreshes.
func (s *server) uiLive(w http.ResponseWriter, r *http.Request) {
	sp, ok := s.loadSaga(w, r)
	if !ok {
		return
	}
	s.render(w, r, "saga", "live", http.StatusOK, page{Content: sp})
}
