package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
	"golang.org/x/mod/sumdb/note"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/approval"
	"github.com/writ-dev/writ/auditlog"
	"github.com/writ-dev/writ/httpapi"
	"github.com/writ-dev/writ/server"
)

// Agent-controlled strings that would run script if a page did not escape
// them (docs/design.md §4.5: agent-written text is shown, never trusted).
const (
	xssTask   = `<script>alert("task")</script><img src=x id=xss-task onerror=alert("task")>`
	xssCommit = `fix <img src=x id=xss-commit onerror=alert("commit")>`
	xssBranch = `<img/src=x/id=xss-branch/onerror=alert(1)>`
	xssFile   = `src/x"><svg id=xss-file onload=alert(2)>.go`
)

// uiRig is a server with a run that pushed a change whose merge waits for
// a commit approval, every agent-controlled field carrying markup.
type uiRig struct {
	*approvalRig
	run      writ.RunID
	approval string
	head     string
	tokens   map[string]string // API tokens by human
}

func startUIRig(t *testing.T) *uiRig {
	t.Helper()
	// These tests sign in many times from one address: not what the
	// sign-in rate limit is about (TestRateLimitPerIdentity).
	a := startApprovals(t, func(cfg *server.Config) {
		cfg.Limits[httpapi.ClassSignIn] = httpapi.Limit{Rate: 1000, Burst: 1000}
	})
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	ctx := context.Background()
	tokens := map[string]string{"dev": a.d.env.Token}
	for _, name := range []string{"bob", "carol", "dave"} {
		tok, err := a.human.CreateToken(ctx, name, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = tok.Token
	}
	if _, err := a.human.AddRepo(ctx, &writ.RepoAddRequest{Name: "acme/api", Init: true}); err != nil {
		t.Fatal(err)
	}
	runC, run := a.run(func(tr *writ.Trigger) {
		tr.Scope.Repos[0].Paths = []string{"src/**"}
		tr.Task = xssTask
	})
	cred, err := runC.RequestCredential(ctx, string(run), &writ.CredentialRequest{Kind: "git", Target: "acme/api", Permissions: []string{"write"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	u := strings.Replace(a.r.url, "http://", "http://"+cred.Credential["username"]+":"+cred.Credential["password"]+"@", 1) + "/git/acme/api.git"
	work := filepath.Join(dir, "work")
	gitCmd(t, dir, "init", "-q", "--initial-branch=main", work)
	os.MkdirAll(filepath.Join(work, "src"), 0o755)
	os.WriteFile(filepath.Join(work, "src", "a.go"), []byte("package src\n\nfunc A() string { return \"<b>not bold</b>\" }\n"), 0o644)
	os.WriteFile(filepath.Join(work, xssFile), []byte("package src\n"), 0o644)
	gitCmd(t, work, "add", ".")
	gitCmd(t, work, "commit", "-q", "-m", xssCommit)
	head := gitCmd(t, work, "rev-parse", "HEAD")
	gitCmd(t, work, "-c", "credential.helper=", "push", "-q", u, "HEAD:refs/heads/writ/"+string(run)+"/"+xssBranch)
	_, err = a.human.Merge(ctx, "acme/api", &writ.MergeRequest{Run: run})
	we, ok := err.(*writ.Error)
	if !ok || we.Approval == "" {
		t.Fatalf("merge: %v; want a pending approval", err)
	}
	return &uiRig{approvalRig: a, run: run, approval: we.Approval, head: head, tokens: tokens}
}

// token returns the API token of a configured human of the rig.
func (u *uiRig) token(name string) string { return u.tokens[name] }

// browserless is an HTTP client that follows no redirect and keeps no
// cookies: each test sets exactly what it sends.
var browserless = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func uiDo(t *testing.T, method, u string, cookie *http.Cookie, form url.Values, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := browserless.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// signIn signs in through the form and returns the session cookie.
func (u *uiRig) signIn(t *testing.T, token string) *http.Cookie {
	t.Helper()
	resp, _ := uiDo(t, "POST", u.r.url+"/ui/signin", nil, url.Values{"token": {token}, "next": {"/ui/runs"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/runs" {
		t.Fatalf("sign-in: %s, Location %q", resp.Status, resp.Header.Get("Location"))
	}
	for _, c := range resp.Cookies() {
		if c.Name == "writ_ui" {
			return c
		}
	}
	t.Fatal("sign-in set no session cookie")
	return nil
}

// flipLast returns s with its last character changed.
func flipLast(s string) string {
	if strings.HasSuffix(s, "A") {
		return s[:len(s)-1] + "B"
	}
	return s[:len(s)-1] + "A"
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the page has no CSRF token")
	}
	return m[1]
}

// TestWebUIAttacks: the web UI's protections, each by attacking it over
// plain HTTP (the browser tests repeat the important ones in Chromium).
func TestWebUIAttacks(t *testing.T) {
	u := startUIRig(t)
	base := u.r.url
	ctx := context.Background()
	devTok, bobTok := u.token("dev"), u.token("bob")

	t.Run("no session: pages redirect to sign-in, posts are refused", func(t *testing.T) {
		for _, p := range []string{"/ui/", "/ui/approvals", "/ui/approvals/" + u.approval, "/ui/runs/" + string(u.run), "/ui/audit", "/ui/audit/proof?index=0", "/ui/audit/export"} {
			resp, _ := uiDo(t, "GET", base+p, nil, nil, nil)
			if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/ui/signin?next=") {
				t.Errorf("GET %s without a session: %s → %q; want a redirect to sign-in", p, resp.Status, resp.Header.Get("Location"))
			}
		}
		// A forged cookie is no session either.
		resp, _ := uiDo(t, "GET", base+"/ui/approvals", &http.Cookie{Name: "writ_ui", Value: devTok}, nil, nil)
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("the API token as a cookie: %s; want a redirect to sign-in", resp.Status)
		}
		resp, _ = uiDo(t, "POST", base+"/ui/runs/"+string(u.run)+"/kill", nil, url.Values{"confirm": {"yes"}}, nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("kill without a session: %s; want 403", resp.Status)
		}
	})

	t.Run("security headers", func(t *testing.T) {
		resp, _ := uiDo(t, "GET", base+"/ui/signin", nil, nil, nil)
		h := resp.Header
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("CSP %q", csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") == "" {
			t.Errorf("nosniff %q, Referrer-Policy %q", h.Get("X-Content-Type-Options"), h.Get("Referrer-Policy"))
		}
	})

	t.Run("sign-in refuses bad tokens and keeps the token out of the cookie", func(t *testing.T) {
		for _, tok := range []string{"", "nonsense", devTok + "x", strings.Replace(devTok, "_", "-", 1)} {
			resp, _ := uiDo(t, "POST", base+"/ui/signin", nil, url.Values{"token": {tok}}, nil)
			if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
				t.Errorf("sign-in with %q: %s, cookies %v; want 401 and none", tok, resp.Status, resp.Cookies())
			}
		}
		c := u.signIn(t, devTok)
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/ui/" {
			t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/ui/", c)
		}
		if strings.Contains(devTok, c.Value) || strings.Contains(c.Value, devTok) || len(c.Value) < 40 {
			t.Errorf("cookie value %q: want a random id unrelated to the token", c.Value)
		}
		// An open redirect after sign-in is not offered.
		resp, _ := uiDo(t, "POST", base+"/ui/signin", nil, url.Values{"token": {devTok}, "next": {"//evil.example/x"}}, nil)
		if loc := resp.Header.Get("Location"); loc != "/ui/approvals" {
			t.Errorf("next=//evil.example: redirected to %q", loc)
		}
	})

	t.Run("CSRF: without the session's token, or from another origin, refused", func(t *testing.T) {
		c := u.signIn(t, devTok)
		_, page := uiDo(t, "GET", base+"/ui/runs/"+string(u.run), c, nil, nil)
		tok := csrfOf(t, page)
		kill := base + "/ui/runs/" + string(u.run) + "/kill"
		for _, tc := range []struct {
			name string
			form url.Values
			hdr  map[string]string
		}{
			{"no token", url.Values{"confirm": {"yes"}}, nil},
			{"a wrong token", url.Values{"confirm": {"yes"}, "csrf": {flipLast(tok)}}, nil},
			{"another session's token", url.Values{"confirm": {"yes"}, "csrf": {csrfOf(t, func() string { _, p := uiDo(t, "GET", base+"/ui/runs", u.signIn(t, bobTok), nil, nil); return p }())}}, nil},
			{"the right token from another origin", url.Values{"confirm": {"yes"}, "csrf": {tok}}, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}},
			{"the right token from a sibling port (same-site)", url.Values{"confirm": {"yes"}, "csrf": {tok}}, map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:1"}},
			{"an Origin header alone naming another origin", url.Values{"confirm": {"yes"}, "csrf": {tok}}, map[string]string{"Origin": "http://evil.example"}},
		} {
			resp, _ := uiDo(t, "POST", kill, c, tc.form, tc.hdr)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: %s; want 403", tc.name, resp.Status)
			}
		}
		if run, err := u.human.GetRun(ctx, string(u.run)); err != nil || run.State != writ.RunActive {
			t.Fatalf("after the refused kills the run is %v (%v); want active", run.State, err)
		}
		// A non-admin with a good token is refused by the API's own rule.
		bc := u.signIn(t, bobTok)
		_, bp := uiDo(t, "GET", base+"/ui/runs/"+string(u.run), bc, nil, nil)
		if strings.Contains(bp, "kill-form") {
			t.Error("a non-admin is shown the kill button")
		}
		resp, body := uiDo(t, "POST", kill, bc, url.Values{"confirm": {"yes"}, "csrf": {csrfOf(t, bp)}}, nil)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "admin") {
			t.Errorf("kill by a non-admin: %s; want 403 from the API (admins only)", resp.Status)
		}
		if run, _ := u.human.GetRun(ctx, string(u.run)); run.State != writ.RunActive {
			t.Fatalf("run %s after a non-admin's kill; want active", run.State)
		}
	})

	t.Run("viewing changes nothing", func(t *testing.T) {
		c := u.signIn(t, bobTok)
		before := len(storeEvents(t, u.r.srv.Store()))
		for _, p := range []string{"/ui/approvals", "/ui/approvals/" + u.approval, "/ui/approvals/" + u.approval + "/statement?verdict=approve",
			"/ui/runs", "/ui/runs/" + string(u.run), "/ui/audit", "/ui/audit/entries/0", "/ui/audit/proof?index=0", "/ui/audit/export"} {
			resp, body := uiDo(t, "GET", base+p, c, nil, nil)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s: %s\n%s", p, resp.Status, body)
			}
		}
		if after := len(storeEvents(t, u.r.srv.Store())); after != before {
			t.Errorf("viewing wrote %d events", after-before)
		}
		if ap, err := u.human.GetApproval(ctx, u.approval); err != nil || ap.State != writ.ApprovalPending {
			t.Errorf("approval after viewing: %v (%v); want pending", ap.State, err)
		}
	})

	t.Run("a tool approval: the agent's arguments labelled and escaped", func(t *testing.T) {
		self, _ := u.policyRig.run(releaseRun)
		d := u.decide(self, pgCredential(`<script>alert(1)</script>`))
		if d.Approval == nil {
			t.Fatalf("decision %+v: want an approval", d)
		}
		_, page := uiDo(t, "GET", base+"/ui/approvals/"+d.Approval.ID, u.signIn(t, bobTok), nil, nil)
		agent, _, _ := strings.Cut(page[strings.Index(page, `<details class="agent" id="agent-text">`):], "</details>")
		if !strings.Contains(agent, "written by the agent") || !strings.Contains(agent, `&#34;role&#34;: &#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;`) {
			t.Errorf("the agent's section:\n%s", agent)
		}
		if strings.Contains(page, `<script>alert`) {
			t.Error("the page carries the agent's script unescaped")
		}
	})

	t.Run("the export verifies offline", func(t *testing.T) {
		c := u.signIn(t, bobTok)
		resp, body := uiDo(t, "GET", base+"/ui/audit/export", c, nil, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
			t.Fatalf("export: %s %v", resp.Status, resp.Header)
		}
		dec := json.NewDecoder(strings.NewReader(body))
		var hdr struct{ Key, Origin, Checkpoint string }
		if err := dec.Decode(&hdr); err != nil {
			t.Fatal(err)
		}
		v, err := note.NewVerifier(hdr.Key)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := auditlog.OpenCheckpoint([]byte(hdr.Checkpoint), v, hdr.Origin)
		if err != nil {
			t.Fatal(err)
		}
		var entries []auditlog.Entry
		for dec.More() {
			var e struct {
				Seq  int64
				Body []byte
			}
			if err := dec.Decode(&e); err != nil {
				t.Fatal(err)
			}
			entries = append(entries, auditlog.Entry{Seq: e.Seq, Body: e.Body})
		}
		if _, err := auditlog.Verify(cp, entries, nil); err != nil || cp.Size == 0 {
			t.Errorf("the UI's export (%d entries, checkpoint size %d) does not verify: %v", len(entries), cp.Size, err)
		}
	})

	t.Run("approve with a pasted SSH signature", func(t *testing.T) {
		c := u.signIn(t, bobTok)
		_, page := uiDo(t, "GET", base+"/ui/approvals/"+u.approval, c, nil, nil)
		tok := csrfOf(t, page)
		st, err := u.humans["bob"].c.ApprovalStatement(ctx, u.approval, approval.Approve)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(page, template.HTMLEscapeString(string(st))) {
			t.Error("the page does not show the exact statement bytes")
		}
		if !strings.Contains(page, "writ approvals approve "+u.approval+" --ssh-key") {
			t.Error("the page does not show the CLI command")
		}
		sign := func(ns string) string {
			signer, err := ssh.NewSignerFromSigner(u.humans["bob"].key)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := sshsig.Sign(bytes.NewReader(st), signer, sshsig.HashSHA512, ns)
			if err != nil {
				t.Fatal(err)
			}
			return string(sshsig.Armor(sig))
		}
		// Signed for another namespace (a trigger): refused by the service.
		resp, body := uiDo(t, "POST", base+"/ui/approvals/"+u.approval+"/approve", c, url.Values{"csrf": {tok}, "sshsig": {sign("writ-trigger")}}, nil)
		if resp.StatusCode == http.StatusSeeOther {
			t.Fatalf("a signature for namespace writ-trigger was accepted")
		}
		// Someone else's key: refused.
		_, other, _ := ed25519.GenerateKey(nil)
		otherSigner, _ := ssh.NewSignerFromSigner(other)
		osig, _ := sshsig.Sign(bytes.NewReader(st), otherSigner, sshsig.HashSHA512, approval.SSHNamespace)
		resp, _ = uiDo(t, "POST", base+"/ui/approvals/"+u.approval+"/approve", c, url.Values{"csrf": {tok}, "sshsig": {string(sshsig.Armor(osig))}}, nil)
		if resp.StatusCode == http.StatusSeeOther {
			t.Fatalf("a signature by an unknown key was accepted")
		}
		resp, body = uiDo(t, "POST", base+"/ui/approvals/"+u.approval+"/approve", c, url.Values{"csrf": {tok}, "sshsig": {sign(approval.SSHNamespace)}}, nil)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("approve: %s\n%s", resp.Status, body)
		}
		ap, err := u.human.GetApproval(ctx, u.approval)
		if err != nil || ap.State != writ.ApprovalApproved || len(ap.Grants) != 1 || ap.Grants[0].Human != "bob" || ap.Grants[0].Format != "sshsig" {
			t.Fatalf("approval after the UI's approve: %+v (%v)", ap, err)
		}
	})

	t.Run("admin kill: confirmed, recorded", func(t *testing.T) {
		c := u.signIn(t, devTok)
		_, page := uiDo(t, "GET", base+"/ui/runs/"+string(u.run), c, nil, nil)
		tok := csrfOf(t, page)
		kill := base + "/ui/runs/" + string(u.run) + "/kill"
		if resp, _ := uiDo(t, "POST", kill, c, url.Values{"csrf": {tok}}, nil); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("kill without confirmation: %s; want 400", resp.Status)
		}
		resp, body := uiDo(t, "POST", kill, c, url.Values{"csrf": {tok}, "confirm": {"yes"}, "reason": {"tests the kill button"}}, nil)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("kill: %s\n%s", resp.Status, body)
		}
		run, err := u.human.GetRun(ctx, string(u.run))
		if err != nil || run.State != writ.RunKilled || run.EndReason != "tests the kill button" {
			t.Fatalf("run after kill: %+v (%v)", run, err)
		}
		if got := strings.Join(runEvents(t, u.r.srv.Store(), u.run), "\n"); !strings.Contains(got, "run.killed human:dev") {
			t.Errorf("no run.killed event by the admin:\n%s", got)
		}
		// Sign out ends the session on the server.
		if resp, _ := uiDo(t, "POST", base+"/ui/signout", c, url.Values{"csrf": {tok}}, nil); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("sign out: %s", resp.Status)
		}
		if resp, _ := uiDo(t, "GET", base+"/ui/runs", c, nil, nil); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("the old cookie after sign-out: %s; want a redirect to sign-in", resp.Status)
		}
	})

	t.Run("logs hold neither tokens nor session ids", func(t *testing.T) {
		logs := u.logs.String()
		for name, tok := range u.tokens {
			if strings.Contains(logs, tok) {
				t.Errorf("the log holds %s's API token", name)
			}
		}
		c := u.signIn(t, bobTok)
		uiDo(t, "GET", base+"/ui/approvals", c, nil, nil)
		if strings.Contains(u.logs.String(), c.Value) {
			t.Error("the log holds a session id")
		}
	})
}
