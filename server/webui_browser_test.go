package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"golang.org/x/mod/sumdb/note"

	"github.com/writ-dev/writ"
)

// chromium finds the browser for the browser tests: WRIT_TEST_CHROMIUM
// (scripts/test.sh exports it), else chromium on PATH. Without one the
// tests skip, except under WRIT_TEST_REQUIRE_ALL=1.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("WRIT_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("WRIT_TEST_REQUIRE_ALL") == "1" {
		t.Fatal("no Chromium (set WRIT_TEST_CHROMIUM or apt-get install -y chromium chromium-driver); WRIT_TEST_REQUIRE_ALL=1 forbids skipping")
	}
	t.Skip("no Chromium: apt-get install -y chromium chromium-driver (scripts/test.sh does it when it can)")
	return ""
}

// browser is a headless Chromium tab that records every JavaScript dialog
// (an alert means injected script ran) and console message.
type browser struct {
	t       *testing.T
	ctx     context.Context
	shots   string
	mu      sync.Mutex
	dialogs []string
	console []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	b := &browser{t: t, ctx: ctx}
	b.shots = os.Getenv("WRIT_TEST_SCREENSHOTS")
	if b.shots == "" {
		b.shots = t.TempDir()
	} else if err := os.MkdirAll(b.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			b.mu.Lock()
			b.dialogs = append(b.dialogs, string(e.Type)+": "+e.Message)
			b.mu.Unlock()
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	})
	if err != nil {
		t.Fatalf("starting Chromium (%s): %v", exe, err)
	}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m.String())
			b.mu.Unlock()
		}
	}()
	return b
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func (b *browser) eval(js string) any {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[any](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func (b *browser) location() string {
	b.t.Helper()
	u, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	return u
}

// shot saves a full-page PNG screenshot (quality 100 is PNG) and logs its
// path.
func (b *browser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", p)
}

// noInjection fails if agent-controlled markup became elements, or if any
// script dialog opened.
func (b *browser) noInjection(page string) {
	b.t.Helper()
	n := b.eval(`document.querySelectorAll("#xss-task, #xss-commit, #xss-branch, #xss-file, img[src=x], svg, script:not([src])").length`)
	if n != float64(0) {
		b.t.Errorf("%s: %v injected element(s) from agent-controlled text", page, n)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.dialogs) > 0 {
		b.t.Errorf("%s: script ran: dialogs %q", page, b.dialogs)
	}
	for _, m := range b.console {
		if strings.Contains(m, "Content Security Policy") {
			b.t.Errorf("%s: a CSP violation (something tried to run or load): %s", page, m)
		}
	}
}

// TestWebUIBrowser drives headless Chromium through the UI: sign-in, a
// pending approval with its diff and the agent's text labelled and inert,
// a run's timeline to a log entry verified in the browser, a cross-origin
// form refused, the admin's kill, and sign-out.
func TestWebUIBrowser(t *testing.T) {
	b := newBrowser(t)
	u := startUIRig(t)
	base := u.r.url

	// Without a session: the sign-in page, remembering where we were going.
	b.do("open the queue", chromedp.Navigate(base+"/ui/approvals"), chromedp.WaitVisible(chromedp.CSS("#token")))
	if loc := b.location(); !strings.HasPrefix(loc, base+"/ui/signin?next=") {
		t.Fatalf("without a session: at %s; want the sign-in page", loc)
	}
	b.shot("01-signin")
	b.do("a wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "writ_nonsense"), chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS("#error")))
	b.do("sign in", chromedp.SendKeys(chromedp.CSS("#token"), u.token("dev")),
		chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS("#approvals")))
	if loc := b.location(); loc != base+"/ui/approvals" {
		t.Errorf("after sign-in: %s; want the queue", loc)
	}
	if cookie := b.eval(`document.cookie`); cookie != "" {
		t.Errorf("the session cookie is readable by script: %q", cookie)
	}
	if !strings.Contains(b.text("#approvals"), u.approval) {
		t.Fatalf("the queue does not list %s", u.approval)
	}
	b.shot("02-approvals")

	// The approval: the diff first, the agent's words collapsed and labelled.
	b.do("open the approval", chromedp.Click(chromedp.CSS(`a[href="/ui/approvals/`+u.approval+`"]`)), chromedp.WaitVisible(chromedp.CSS("#files")))
	files := b.text("#files")
	for _, want := range []string{"src/a.go", xssFile} {
		if !strings.Contains(files, want) {
			t.Errorf("the file list lacks %q:\n%s", want, files)
		}
	}
	if d := b.text("#diff"); !strings.Contains(d, `+func A() string { return "<b>not bold</b>" }`) || !strings.Contains(d, "matches the approved diff digest") {
		t.Errorf("the diff section:\n%s", d)
	}
	order := b.eval(`["asked","risk","diff","grants","agent","sign"].map(id => document.getElementById(id).getBoundingClientRect().top)`)
	if o, ok := order.([]any); !ok || len(o) != 6 || !(o[0].(float64) < o[1].(float64) && o[1].(float64) < o[2].(float64) && o[2].(float64) < o[4].(float64)) {
		t.Errorf("sections out of order (what is asked, risk, diff before the agent's words): %v", order)
	}
	if open := b.eval(`document.querySelector("details#agent-text").open`); open != false {
		t.Error("the agent's text is not collapsed")
	}
	if s := b.text("details#agent-text summary"); !strings.Contains(strings.ToLower(s), "written by the agent") {
		t.Errorf("the agent's text is labelled %q", s)
	}
	b.do("expand the agent's text", chromedp.Click(chromedp.CSS("details#agent-text summary")))
	agent := b.text("details#agent-text")
	for _, want := range []string{xssTask, xssCommit, xssBranch} {
		if !strings.Contains(agent, want) {
			t.Errorf("the agent's section does not show %q as text:\n%s", want, agent)
		}
	}
	if st := b.text("#verdict-approve pre.statement"); !strings.Contains(st, `"approvalId":"`+u.approval+`"`) || !strings.Contains(st, `"verdict":"approve"`) {
		t.Errorf("statement shown: %s", st)
	}
	b.noInjection("approval page")
	b.shot("03-approval")

	// A cross-origin page posting to the UI with the browser's cookie (a
	// sibling port is same-site: SameSite=Strict does not stop it, the
	// origin check does).
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><form id=f method=post action="%s/ui/runs/%s/kill"><input name=confirm value=yes><input name=csrf value=guess></form><script>document.getElementById("f").submit()</script>`, base, u.run)
	}))
	defer evil.Close()
	b.do("the attacker's page", chromedp.Navigate(evil.URL))
	poll(t, "the answer to the attacker's post", func() bool {
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.location.pathname.endsWith("/kill") && document.body ? document.body.innerText : ""`))
		return strings.Contains(body, "cross-origin request refused")
	})
	if run, _ := u.human.GetRun(context.Background(), string(u.run)); run.State != writ.RunActive {
		t.Fatalf("a cross-origin form killed the run (%s)", run.State)
	}

	// The run's timeline, and a log entry verified in the browser.
	b.do("the runs", chromedp.Navigate(base+"/ui/runs?repo=acme/api"), chromedp.WaitVisible(chromedp.CSS("#runs")))
	if !strings.Contains(b.text("#runs"), string(u.run)) {
		t.Error("the repo filter lost the run")
	}
	b.shot("04-runs")
	b.do("the run's timeline", chromedp.Click(chromedp.CSS(`#runs a[href="/ui/runs/`+string(u.run)+`"]`)), chromedp.WaitVisible(chromedp.CSS("#timeline")))
	tl := b.text("#timeline")
	for _, want := range []string{"trigger.accepted", "credential.issued", "git.pushed", "approval.requested"} {
		if !strings.Contains(tl, want) {
			t.Errorf("the timeline lacks %s:\n%s", want, tl)
		}
	}
	b.noInjection("run page")
	b.shot("05-run")
	poll(t, "the run's first event to be logged", func() bool {
		b.do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#timeline")))
		return b.eval(`document.querySelectorAll("#timeline a.seq").length`) != float64(0)
	})
	href := b.eval(`document.querySelector("#timeline a.seq").getAttribute("href")`).(string)
	b.do("follow the log index", chromedp.Click(chromedp.CSS("#timeline a.seq")), chromedp.WaitVisible(chromedp.CSS("#verify")))
	if loc := b.location(); loc != base+href || !strings.HasPrefix(href, "/ui/audit/entries/") {
		t.Errorf("followed %s to %s", href, loc)
	}
	b.do("verify", chromedp.Click(chromedp.CSS("#verify")))
	poll(t, "the browser's verification", func() bool { return b.eval(`document.getElementById("verify-result").dataset.state`) != "running" })
	if st := b.eval(`document.getElementById("verify-result").dataset.state`); st != "verified" {
		t.Errorf("inclusion in the browser: %v: %s\n%s", st, b.text("#verify-result"), b.text("#verify-detail"))
	}
	if r := b.text("#verify-result"); !strings.HasPrefix(r, "Verified:") {
		t.Errorf("verification result %q; want the checkpoint's signature verified too", r)
	}
	b.shot("06-entry-verified")

	// The check is not vacuous: a changed entry, or a checkpoint signed by
	// another key, fails it.
	verifyAgain := func(what string) string {
		t.Helper()
		b.do(what, chromedp.Click(chromedp.CSS("#verify")))
		poll(t, what, func() bool { return b.eval(`document.getElementById("verify-result").dataset.state`) != "running" })
		return b.text("#verify-result")
	}
	b.eval(`(() => { const orig = window.fetch; window.fetch = async (...a) => {
		const j = await (await orig(...a)).json();
		j.entry.body = btoa(atob(j.entry.body) + " "); j.entry.leafHash = "";
		return new Response(JSON.stringify(j)); }; return true })()`)
	if r := verifyAgain("verify a tampered entry"); !strings.HasPrefix(r, "Not verified: the proof does not lead to the checkpoint's root") {
		t.Errorf("a tampered entry: %q", r)
	}
	b.do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#verify")))
	b.eval(`(() => { const orig = window.fetch; window.fetch = async (...a) => {
		const j = await (await orig(...a)).json();
		const i = j.checkpoint.lastIndexOf(" ") + 11, c = j.checkpoint[i];
		j.checkpoint = j.checkpoint.slice(0, i) + (c === "A" ? "B" : "A") + j.checkpoint.slice(i + 1);
		return new Response(JSON.stringify(j)); }; return true })()`)
	if r := verifyAgain("verify a forged checkpoint signature"); !strings.HasPrefix(r, "Not verified: the checkpoint's signature does not verify") {
		t.Errorf("a forged signature: %q", r)
	}
	b.do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#verify")))
	_, otherKey, err := note.GenerateKey(nil, u.d.cfg.TrustDomain+"/audit")
	if err != nil {
		t.Fatal(err)
	}
	b.eval(`document.getElementById("verify").dataset.key = ` + strconv.Quote(otherKey) + `; true`)
	if r := verifyAgain("verify with another log key"); !strings.HasPrefix(r, "Not verified: the checkpoint carries no signature by the log key") {
		t.Errorf("another log key: %q", r)
	}

	b.do("the audit page", chromedp.Navigate(base+"/ui/audit"), chromedp.WaitVisible(chromedp.CSS("#checkpoint")))
	if cp := b.text("#checkpoint"); !strings.Contains(cp, "/audit") {
		t.Errorf("checkpoint %q", cp)
	}
	b.shot("07-audit")

	// The admin's kill: confirmed in the form, recorded on the timeline.
	b.do("kill", chromedp.Navigate(base+"/ui/runs/"+string(u.run)), chromedp.WaitVisible(chromedp.CSS("#kill-form")),
		chromedp.SendKeys(chromedp.CSS(`#kill-form input[name=reason]`), "stopped from the browser test"),
		chromedp.Click(chromedp.CSS(`#kill-form input[name=confirm]`)), chromedp.Click(chromedp.CSS(`#kill-form button`)),
		chromedp.WaitVisible(chromedp.CSS("#flash")))
	if tl := b.text("#timeline"); !strings.Contains(tl, "run.killed") || !strings.Contains(tl, "stopped from the browser test") {
		t.Errorf("the kill is not on the timeline:\n%s", tl)
	}
	b.shot("08-run-killed")

	// Sign out: the pages need a session again.
	b.do("sign out", chromedp.Click(chromedp.CSS("header .signout button")), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.do("back to a run", chromedp.Navigate(base+"/ui/runs/"+string(u.run)), chromedp.WaitVisible(chromedp.CSS("#token")))
	if loc := b.location(); !strings.HasPrefix(loc, base+"/ui/signin") {
		t.Errorf("after sign-out: %s; want the sign-in page", loc)
	}
	b.noInjection("the whole session")
}
