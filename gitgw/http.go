package gitgw

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/decision"
)

// Limits of request bodies other than a push's pack.
const (
	maxFetchBody = 16 << 20 // an upload-pack request: wants, haves, filters
)

// principal is who a git request comes from: a run (through its lease)
// or a human.
type principal struct {
	run   *writ.Run
	lease *writ.Lease
	human *writ.Principal
}

func (p *principal) actor() string {
	if p.run != nil {
		return "run:" + string(p.run.ID)
	}
	return writ.HumanActor(p.human.Name)
}

func (p *principal) runID() writ.RunID {
	if p.run != nil {
		return p.run.ID
	}
	return ""
}

// ServeHTTP serves /git/{owner}/{repo}.git/{info/refs,git-upload-pack,git-receive-pack}.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache, max-age=0, must-revalidate")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	name, rest, err := parsePath(r)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	var service string
	switch {
	case rest == "info/refs" && r.Method == http.MethodGet:
		q := r.URL.Query()
		service = q.Get("service")
		if len(q) != 1 || len(q["service"]) != 1 || (service != "git-upload-pack" && service != "git-receive-pack") {
			g.fail(w, r, writ.Errorf(writ.KindInvalid, "dumb_http", "writ serves git's smart HTTP protocol only: ?service=git-upload-pack or git-receive-pack"))
			return
		}
	case (rest == "git-upload-pack" || rest == "git-receive-pack") && r.Method == http.MethodPost:
		service = rest
		if ct := r.Header.Get("Content-Type"); ct != "application/x-"+service+"-request" {
			g.fail(w, r, writ.Errorf(writ.KindInvalid, "bad_content_type", "a %s request has Content-Type application/x-%s-request", service, service))
			return
		}
	default:
		g.fail(w, r, writ.Errorf(writ.KindNotFound, "no_route", "%s %s is not a git smart HTTP route; clone %s/git/%s.git", r.Method, r.URL.Path, "<writ>", name))
		return
	}
	write := service == "git-receive-pack"
	who, err := g.authenticate(r, name, write)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	if !g.exists(name) {
		g.fail(w, r, writ.Errorf(writ.KindNotFound, "unknown_repo", "repository %s is not hosted by this writ; an admin adds it with writ repo add", name))
		return
	}
	// The server's read and write timeouts suit JSON calls; a clone or a
	// push gets the gateway's own bound.
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.Timeout)
	defer cancel()
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(g.now().Add(g.cfg.Timeout))
	_ = rc.SetWriteDeadline(g.now().Add(g.cfg.Timeout))
	switch {
	case rest == "info/refs":
		err = g.infoRefs(ctx, w, r, name, service)
	case write:
		err = g.receivePack(ctx, w, r, name, who)
	default:
		err = g.uploadPack(ctx, w, r, name, who)
	}
	if err != nil {
		g.fail(w, r, err)
	}
}

// parsePath splits /git/<owner>/<repo>.git/<rest> and validates the name.
// An escaped path (%2e%2e, %2f) is refused before it is decoded into
// anything: git clients never escape these paths.
func parsePath(r *http.Request) (name, rest string, err error) {
	bad := writ.Errorf(writ.KindNotFound, "invalid_repo", "not a repository path: want /git/<owner>/<repo>.git/… with owner and repo of [a-z0-9._-]")
	if r.URL.RawPath != "" || strings.Contains(r.URL.EscapedPath(), "%") {
		return "", "", bad
	}
	p, ok := strings.CutPrefix(r.URL.Path, "/git/")
	if !ok {
		return "", "", bad
	}
	parts := strings.SplitN(p, "/", 3)
	if len(parts) != 3 {
		return "", "", bad
	}
	repo, ok := strings.CutSuffix(parts[1], ".git")
	if !ok {
		return "", "", bad
	}
	name = parts[0] + "/" + repo
	if !writ.ValidRepoName(name) {
		return "", "", bad
	}
	return name, parts[2], nil
}

// authenticate checks the Basic credential: a run's git lease for name
// (write: one that may push), or a human's API token as the password.
func (g *Gateway) authenticate(r *http.Request, name string, write bool) (*principal, error) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return nil, errNoAuth
	}
	ctx := r.Context()
	if !strings.HasPrefix(pass, "writ_git_") && writ.LooksLikeHumanToken(pass) {
		p, err := g.cfg.Humans.AuthenticateHuman(ctx, pass)
		if err != nil {
			return nil, err
		}
		return &principal{human: p}, nil
	}
	l, err := g.cfg.Leases.CheckGit(ctx, user, pass, name, write)
	if err != nil {
		return nil, err
	}
	run, err := g.cfg.Runs.Get(ctx, l.Run)
	if err != nil {
		return nil, err
	}
	if run.State != writ.RunActive {
		return nil, writ.Errorf(writ.KindUnauthenticated, "run_not_active", "run %s is %s; its credentials no longer work", run.ID, run.State)
	}
	return &principal{run: run, lease: l}, nil
}

var errNoAuth = writ.Errorf(writ.KindUnauthenticated, "missing_credential",
	"writ's git gateway needs a credential: runs use writ's credential helper (git config credential.helper '!writ git-credential' and credential.useHttpPath true); humans give their API token as the password")

// fail answers a request git made with an error. git shows a text/plain
// body of a failed request as "remote: …" lines; a 401 makes it ask its
// credential helper.
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, err error) {
	we, ok := err.(*writ.Error)
	if !ok {
		var e *writ.Error
		if writ.ErrorKind(err) != writ.KindInternal {
			e = asWritError(err)
		}
		if e == nil {
			g.log.ErrorContext(r.Context(), "git request failed", slog.String("path", r.URL.Path), slog.Any("error", err))
			e = &writ.Error{Kind: writ.KindInternal, Code: "internal", Message: "internal error; the server's log says why"}
		}
		we = e
	}
	status := we.Kind.HTTPStatus()
	switch we.Kind {
	case writ.KindUnauthenticated:
		w.Header().Set("WWW-Authenticate", `Basic realm="writ"`)
	case writ.KindUnavailable, writ.KindRateLimited:
		// Every "retry later" says when (docs/design.md §4.8).
		w.Header().Set("Retry-After", we.RetryAfterHeader())
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "writ: %s (%s)\n", we.Message, we.Code)
}

func asWritError(err error) *writ.Error {
	for e := err; e != nil; {
		if we, ok := e.(*writ.Error); ok {
			return we
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return nil
		}
		e = u.Unwrap()
	}
	return nil
}

// body returns the request body, decompressed when git sent it gzipped,
// read at most limit bytes (then a KindTooLarge error).
func body(r *http.Request, limit int64) (io.Reader, func(), error) {
	var rd io.Reader = r.Body
	closer := func() {}
	switch r.Header.Get("Content-Encoding") {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, nil, writ.Errorf(writ.KindInvalid, "bad_body", "the gzipped request body is not valid gzip")
		}
		rd, closer = zr, func() { zr.Close() }
	default:
		return nil, nil, writ.Errorf(writ.KindInvalid, "bad_body", "Content-Encoding %q is not supported", r.Header.Get("Content-Encoding"))
	}
	return &limitReader{r: rd, n: limit}, closer, nil
}

// limitReader reads at most n bytes and then fails with KindTooLarge
// rather than a silent EOF.
type limitReader struct {
	r io.Reader
	n int64
}

var errTooLarge = writ.Errorf(writ.KindTooLarge, "too_large", "the request is over writ's size limit for git requests")

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			return 0, errTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// gitProtocol returns the Git-Protocol header's allowed part ("version=2"),
// handed to git as GIT_PROTOCOL.
func gitProtocol(r *http.Request) string {
	for _, kv := range strings.Split(r.Header.Get("Git-Protocol"), ":") {
		if kv == "version=2" || kv == "version=1" {
			return kv
		}
	}
	return ""
}

// infoRefs serves the ref advertisement of service.
func (g *Gateway) infoRefs(ctx context.Context, w http.ResponseWriter, r *http.Request, name, service string) error {
	proto := gitProtocol(r)
	if service == "git-receive-pack" {
		proto = "" // pushes speak protocol v0
	}
	svc := strings.TrimPrefix(service, "git-")
	c := g.cmd(ctx, g.dir(name), protoEnv(proto), svc, "--stateless-rpc", "--advertise-refs", "--", g.dir(name))
	out, err := c.Output()
	if err != nil {
		return fmt.Errorf("%s --advertise-refs: %w", svc, err)
	}
	w.Header().Set("Content-Type", "application/x-"+service+"-advertisement")
	w.WriteHeader(http.StatusOK)
	if proto != "version=2" {
		_, _ = w.Write(pkt("# service=" + service + "\n"))
		_, _ = io.WriteString(w, "0000")
	}
	_, err = w.Write(out)
	return err
}

func protoEnv(proto string) []string {
	if proto == "" {
		return nil
	}
	return []string{"GIT_PROTOCOL=" + proto}
}

// uploadPack serves a fetch: a git.fetch decision for a run (on the
// request that fetches, not on ls-refs), then the real upload-pack.
func (g *Gateway) uploadPack(ctx context.Context, w http.ResponseWriter, r *http.Request, name string, who *principal) error {
	rd, closeBody, err := body(r, maxFetchBody)
	if err != nil {
		return err
	}
	defer closeBody()
	br := bufio.NewReaderSize(rd, 64<<10)
	proto := gitProtocol(r)
	fetching := true
	if proto == "version=2" {
		fetching = firstCommand(br) == "fetch"
	}
	var dec *writ.Decision
	if fetching && who.run != nil {
		dec, err = g.cfg.Decider.Decide(ctx, &decision.Request{Run: who.run, Via: "git", Actor: who.actor(),
			Action: writ.Action{Kind: writ.ActionGitFetch, Target: writ.Target{Repo: name}}})
		if err != nil {
			return err
		}
		if dec.Verdict != writ.VerdictAllow {
			// An ERR packet is what git shows of a refused fetch: "remote
			// error: writ: …".
			w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
			w.WriteHeader(http.StatusOK)
			code, sentence := writ.DecisionMessage(dec)
			_, _ = w.Write(pkt(fmt.Sprintf("ERR writ: %s (%s, decision %s)\n", sentence, code, dec.ID)))
			return nil
		}
	}
	start := g.now()
	c := g.cmd(ctx, g.dir(name), protoEnv(proto), "upload-pack", "--stateless-rpc", "--strict", "--", g.dir(name))
	c.Stdin = br
	cw := &countWriter{w: w}
	c.Stdout = cw
	var stderr strings.Builder
	c.Stderr = &limitedWriter{w: &stderr, n: 4096}
	w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
	w.WriteHeader(http.StatusOK)
	if err := c.Run(); err != nil {
		// The status line is sent: all that is left is the log.
		g.log.WarnContext(ctx, "upload-pack failed", slog.String("repo", name), slog.String("actor", who.actor()), slog.Any("error", err), slog.String("stderr", truncate(stderr.String(), 300)))
		return nil
	}
	if fetching {
		details := map[string]any{"repo": name, "bytes": cw.n, "protocol": strings.TrimPrefix(proto, "version="), "ms": g.now().Sub(start).Milliseconds()}
		if proto == "" {
			details["protocol"] = "0"
		}
		ev := &writ.Event{Type: EventFetched, Run: who.runID(), Actor: who.actor(), Action: writ.ActionGitFetch, Subject: name, Details: details}
		if dec != nil {
			ev.Decision = dec.ID
		}
		if err := g.cfg.Events.AppendEvent(ctx, ev); err != nil {
			g.log.ErrorContext(ctx, "recording a fetch", slog.String("repo", name), slog.Any("error", err))
		}
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
