package webui

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the UI is mounted.
const Prefix = "/ui/"

// Config holds the UI's dependencies.
type Config struct {
	// API is writ's JSON API. The UI calls it in-process with the signed-in
	// human's token, so every rule about who may see or do what is the API's.
	API http.Handler
	// Authenticate checks a human's API token, for sign-in.
	Authenticate func(ctx context.Context, token string) (*writ.Principal, error)
	// Diff returns the diff of a hosted repository from base to head; nil
	// when there is no git gateway.
	Diff func(ctx context.Context, repo, base, head string) (*Diff, error)
	// Secure marks the session cookie Secure even on plain-HTTP requests:
	// set it when the server is reached over HTTPS through a proxy that
	// terminates TLS (the public URL is https). A request that arrives over
	// TLS always gets a Secure cookie.
	Secure bool
	// SessionTTL is how long a session lasts (default 8h).
	SessionTTL time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
}

// Diff is a server-computed diff: the text (possibly cut), the digest of the
// whole diff as a commit approval binds it, and the commits in its range.
type Diff struct {
	Text      []byte
	Digest    string
	Truncated bool
	Commits   []Commit
}

// Commit is one commit of a diff's range; its message is the agent's.
type Commit struct {
	SHA     string
	Message string
}

// UI serves the web UI.
type UI struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	sessions *sessions
	pages    map[string]*template.Template
	handler  http.Handler
}

// New returns the UI; it panics if its embedded templates do not parse.
func New(cfg Config) *UI {
	u := &UI{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	u.log = u.log.With("component", "webui")
	if u.now == nil {
		u.now = time.Now
	}
	ttl := cfg.SessionTTL
	if ttl <= 0 {
		ttl = 8 * time.Hour
	}
	u.sessions = &sessions{m: map[string]*session{}, ttl: ttl, now: u.now}
	u.pages = parsePages()
	mux := http.NewServeMux()
	u.routes(mux)
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
	}))
	u.handler = secureHeaders(cop.Handler(mux))
	return u
}

// ServeHTTP serves the UI's routes (all under /ui/).
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) { u.handler.ServeHTTP(w, r) }

// pageFunc is a handler for a signed-in human.
type pageFunc func(w http.ResponseWriter, r *http.Request, s *session) error

// routes is the one table of the UI's pages.
func (u *UI) routes(mux *http.ServeMux) {
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /ui/signin", u.signInPage)
	mux.HandleFunc("POST /ui/signin", u.signIn)
	mux.Handle("POST /ui/signout", u.post(u.signOut))
	mux.Handle("GET /ui/{$}", u.page(func(w http.ResponseWriter, r *http.Request, s *session) error {
		http.Redirect(w, r, "/ui/approvals", http.StatusSeeOther)
		return nil
	}))
	mux.Handle("GET /ui/approvals", u.page(u.approvals))
	mux.Handle("GET /ui/approvals/{id}", u.page(u.approval))
	mux.Handle("GET /ui/approvals/{id}/statement", u.page(u.statement))
	mux.Handle("POST /ui/approvals/{id}/{verdict}", u.post(u.submit))
	mux.Handle("GET /ui/runs", u.page(u.runs))
	mux.Handle("GET /ui/runs/{id}", u.page(u.run))
	mux.Handle("POST /ui/runs/{id}/kill", u.post(u.kill))
	mux.Handle("GET /ui/audit", u.page(u.audit))
	mux.Handle("GET /ui/audit/entries/{seq}", u.page(u.entry))
	mux.Handle("GET /ui/audit/proof", u.page(u.proof))
	mux.Handle("GET /ui/audit/export", u.page(u.export))
	mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		u.render(w, r, http.StatusNotFound, "error", nil, pageData{Title: "Not found", Error: "There is no such page."})
	})
}

// csp allows only the UI's own files: no inline script or style, no
// frames, forms posting only back here.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		if r.ContentLength > 1<<20 {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		h.ServeHTTP(w, r)
	})
}

// page wraps a GET handler: without a valid session it redirects to
// sign-in.
func (u *UI) page(h pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := u.sessions.get(r)
		if s == nil {
			u.toSignIn(w, r)
			return
		}
		u.finish(w, r, s, h(w, r, s))
	})
}

// post wraps a state-changing handler: it needs a session and that
// session's CSRF token in the form (cross-origin requests were already
// refused by CrossOriginProtection).
func (u *UI) post(h pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := u.sessions.get(r)
		if s == nil {
			http.Error(w, "not signed in", http.StatusForbidden)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		if tok := r.PostForm.Get("csrf"); tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.csrf)) != 1 {
			http.Error(w, "the form's CSRF token is missing or wrong: reload the page and try again", http.StatusForbidden)
			return
		}
		u.finish(w, r, s, h(w, r, s))
	})
}

func (u *UI) finish(w http.ResponseWriter, r *http.Request, s *session, err error) {
	if err == nil {
		return
	}
	var ae *apiError
	switch {
	case errors.Is(err, errSignedOut):
		u.sessions.drop(s.id)
		u.clearCookie(w, r)
		u.toSignIn(w, r)
	case errors.As(err, &ae):
		u.render(w, r, ae.Status, "error", s, pageData{Title: "Refused", Error: ae.Message, Code: ae.Code})
	default:
		u.log.ErrorContext(r.Context(), "page failed", slog.String("path", r.URL.Path), slog.String("human", s.human), slog.Any("error", err))
		u.render(w, r, http.StatusInternalServerError, "error", s, pageData{Title: "Error", Error: "internal error"})
	}
}

func (u *UI) toSignIn(w http.ResponseWriter, r *http.Request) {
	next := r.URL.Path
	if r.URL.RawQuery != "" {
		next += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, "/ui/signin?next="+url.QueryEscape(next), http.StatusSeeOther)
}

// safeNext keeps a post-sign-in redirect inside the UI.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/approvals"
	}
	return next
}

// pageData is what every page template gets.
type pageData struct {
	Title string
	Human string
	Admin bool
	CSRF  string
	Nav   string
	Error string
	Code  string
	Flash string
	Data  any
}

func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, name string, s *session, d pageData) {
	if s != nil {
		d.Human, d.Admin, d.CSRF = s.human, s.admin, s.csrf
	}
	t := u.pages[name]
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout", d); err != nil {
		u.log.ErrorContext(r.Context(), "template failed", slog.String("page", name), slog.Any("error", err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// The pages, each a template file defining "content", rendered inside
// layout.html.
var pageNames = []string{"signin", "error", "approvals", "approval", "runs", "run", "audit", "entry"}

func parsePages() map[string]*template.Template {
	funcs := template.FuncMap{
		"short": func(s string) string { return s[:min(len(s), 12)] },
		"time": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"json": func(v any) string {
			b, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				return fmt.Sprint(v)
			}
			return string(b)
		},
		"b64": func(b []byte) string { return base64.StdEncoding.EncodeToString(b) },
		"str": func(b []byte) string { return string(b) },
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		out[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return out
}

// --- sessions ---

// cookieName is the session cookie. It holds a random id only; the API
// token stays in the server's memory.
const cookieName = "writ_ui"

type session struct {
	id      string
	csrf    string
	token   string
	human   string
	admin   bool
	expires time.Time
}

type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	ttl time.Duration
	now func() time.Time
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (ss *sessions) create(p *writ.Principal, token string) *session {
	now := ss.now()
	s := &session{id: randomID(), csrf: randomID(), token: token, human: p.Name, admin: p.InGroup(writ.GroupAdmins), expires: now.Add(ss.ttl)}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for id, o := range ss.m {
		if !now.Before(o.expires) {
			delete(ss.m, id)
		}
	}
	ss.m[s.id] = s
	return s
}

func (ss *sessions) get(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil || c.Value == "" {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[c.Value]
	if s == nil {
		return nil
	}
	if !ss.now().Before(s.expires) {
		delete(ss.m, s.id)
		return nil
	}
	return s
}

func (ss *sessions) drop(id string) {
	ss.mu.Lock()
	delete(ss.m, id)
	ss.mu.Unlock()
}

func (u *UI) setCookie(w http.ResponseWriter, r *http.Request, s *session, ttl time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: s.id, Path: Prefix, HttpOnly: true, Secure: r.TLS != nil || u.cfg.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(ttl.Seconds())})
}

func (u *UI) clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, HttpOnly: true, Secure: r.TLS != nil || u.cfg.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

func (u *UI) signInPage(w http.ResponseWriter, r *http.Request) {
	u.render(w, r, http.StatusOK, "signin", nil, pageData{Title: "Sign in", Data: map[string]string{"Next": safeNext(r.URL.Query().Get("next"))}})
}

func (u *UI) signIn(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	p, err := u.cfg.Authenticate(r.Context(), tok)
	if err != nil || p == nil || p.Kind != writ.PrincipalHuman {
		msg := "That API token is not valid: it is unknown, malformed, expired, or its human is no longer configured."
		if we := (*writ.Error)(nil); errors.As(err, &we) && we.Kind != writ.KindUnauthenticated {
			msg = "Sign-in failed; try again."
			u.log.WarnContext(r.Context(), "sign-in failed", slog.Any("error", err))
		}
		u.render(w, r, http.StatusUnauthorized, "signin", nil, pageData{Title: "Sign in", Error: msg, Data: map[string]string{"Next": next}})
		return
	}
	s := u.sessions.create(p, tok)
	u.setCookie(w, r, s, u.sessions.ttl)
	u.log.InfoContext(r.Context(), "signed in", slog.String("human", p.Name))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (u *UI) signOut(w http.ResponseWriter, r *http.Request, s *session) error {
	u.sessions.drop(s.id)
	u.clearCookie(w, r)
	u.log.InfoContext(r.Context(), "signed out", slog.String("human", s.human))
	http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
	return nil
}

// --- the API, in-process ---

// apiError is the API's refusal, shown to the human as the API worded it.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// errSignedOut: the API no longer accepts the session's token.
var errSignedOut = errors.New("the session's token is no longer accepted")

type recorder struct {
	h    http.Header
	code int
	b    bytes.Buffer
}

func (rc *recorder) Header() http.Header { return rc.h }
func (rc *recorder) WriteHeader(code int) {
	if rc.code == 0 {
		rc.code = code
	}
}
func (rc *recorder) Write(p []byte) (int, error) {
	if rc.code == 0 {
		rc.code = http.StatusOK
	}
	return rc.b.Write(p)
}

// call makes one API request as the session's human and returns the raw
// body of a 2xx answer; out, when not nil, is decoded from it.
func (u *UI) call(r *http.Request, s *session, method, path string, body []byte, out any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, path, rd)
	if err != nil {
		return nil, err
	}
	req.RemoteAddr = r.RemoteAddr
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("User-Agent", "writ-webui")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rc := &recorder{h: http.Header{}}
	u.cfg.API.ServeHTTP(rc, req)
	if rc.code == http.StatusUnauthorized {
		return nil, errSignedOut
	}
	if rc.code < 200 || rc.code > 299 {
		var eb struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(rc.b.Bytes(), &eb)
		if eb.Error.Message == "" {
			eb.Error.Message = http.StatusText(rc.code)
		}
		return nil, &apiError{Status: rc.code, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	if out != nil {
		if err := json.Unmarshal(rc.b.Bytes(), out); err != nil {
			return nil, fmt.Errorf("decoding %s %s: %w", method, path, err)
		}
	}
	return rc.b.Bytes(), nil
}
