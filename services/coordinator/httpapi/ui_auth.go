package httpapi

import (
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// uiCookie holds the API token of a signed-in browser: HttpOnly, so no
// script reads it, SameSite=Strict, so no other site's form sends it.
const uiCookie = "upshift_token"

// uiSession is how long a sign-in lasts.
const uiSession = 12 * time.Hour

// uiCaller returns the caller whose token the cookie holds, if it is known.
func (s *server) uiCaller(r *http.Request) (caller, bool) {
	c, err := r.Cookie(uiCookie)
	if err != nil || c.Value == "" {
		return caller{}, false
	}
	tok, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return caller{}, false
	}
	return s.known.find(string(tok))
}

// uiAuthorize answers with a page and returns false unless the browser is
// signed in with a token that has role: as the JSON API, an unknown or
// missing token is a 401, a token without the role a 403.
func (s *server) uiAuthorize(w http.ResponseWriter, r *http.Request, role Role) (caller, int) {
	who, ok := s.uiCaller(r)
	if !ok {
		s.render(w, r, "login", "layout", http.StatusUnauthorized,
			page{Title: "Sign in", Content: loginPage{Next: r.URL.Path, Error: "sign in with an API token to see or do this"}})
		return caller{}, http.StatusUnauthorized
	}
	if !who.has(role) {
		s.message(w, r, http.StatusForbidden, "Forbidden", "token "+who.String()+" lacks the "+string(role)+" role")
		return who, http.StatusForbidden
	}
	return who, 0
}

// uiRead guards a page as the JSON API guards its GETs: open unless named
// tokens are configured, then for a token with the read role.
func (s *server) uiRead(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if len(s.cfg.Tokens) > 0 {
			if who, code := s.uiAuthorize(w, r, RoleRead); code != 0 {
				s.log.LogAttrs(r.Context(), slog.LevelWarn, "web page refused", slog.String("path", r.URL.Path),
					slog.String("token", who.String()), slog.Int("status", code), slog.String("remote", r.RemoteAddr))
				return
			}
		}
		h(w, r)
	}
}

// loginPage is the sign-in form's content.
type loginPage struct {
	Next  string
	Error string
}

func (s *server) uiLoginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, "login", "layout", http.StatusOK, page{Title: "Sign in", Content: loginPage{Next: localNext(r.URL.Query().Get("next"))}})
}

// uiLogin checks the token given and keeps it in the cookie. The token is
// never written back into a page or a log line.
func (s *server) uiLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	if err := r.ParseForm(); err != nil {
		s.message(w, r, http.StatusBadRequest, "Bad request", "the form could not be read")
		return
	}
	next := localNext(r.PostForm.Get("next"))
	if len(s.known.hashes) == 0 {
		s.render(w, r, "login", "layout", http.StatusForbidden, page{Title: "Sign in", Content: loginPage{Next: next, Error: errNoToken}})
		return
	}
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	who, ok := s.known.find(tok)
	if tok == "" || !ok {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "web sign-in refused", slog.String("remote", r.RemoteAddr))
		s.render(w, r, "login", "layout", http.StatusUnauthorized, page{Title: "Sign in", Content: loginPage{Next: next, Error: "the token is not valid"}})
		return
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "web sign-in", slog.String("token", who.String()), slog.String("remote", r.RemoteAddr))
	http.SetCookie(w, &http.Cookie{Name: uiCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(tok)), Path: "/ui/",
		MaxAge: int(uiSession / time.Second), HttpOnly: true, Secure: overTLS(r), SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *server) uiLogout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: uiCookie, Value: "", Path: "/ui/", MaxAge: -1, HttpOnly: true,
		Secure: overTLS(r), SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// overTLS says whether the browser reached us over TLS, directly or
// through a proxy that says so. Trusting the header only ever makes the
// cookie stricter.
func overTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// localNext keeps a redirect after sign-in on this page: anything but a
// path under /ui/ (another host, "//host", a scheme) goes to the list.
func localNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, "/ui/") || strings.HasPrefix(next, "//") ||
		strings.ContainsAny(next, "\\\r\n") {
		return "/ui/"
	}
	return u.RequestURI()
}
