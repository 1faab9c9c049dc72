package gitgw

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/decision"
)

const testRun writ.RunID = "01jdaaaaaaaaaaaaaaaaaaaaaa"

type fakeLeases struct{}

// CheckGit accepts the password "good" for acme/api only.
func (fakeLeases) CheckGit(ctx context.Context, user, password, repo string, write bool) (*writ.Lease, error) {
	if password != "good" || user != string(testRun) {
		return nil, writ.Errorf(writ.KindUnauthenticated, "invalid_credential", "unknown git credential")
	}
	if repo != "acme/api" {
		return nil, writ.Errorf(writ.KindDenied, "credential_not_for_repo", "this git credential is for acme/api, not %s", repo)
	}
	return &writ.Lease{ID: "lse_x", Run: testRun, Kind: "git", Target: repo, Permissions: []string{"read", "write"}}, nil
}

type fakeHumans struct{}

func (fakeHumans) AuthenticateHuman(ctx context.Context, token string) (*writ.Principal, error) {
	return nil, writ.Errorf(writ.KindUnauthenticated, "invalid_token", "bad token")
}

type fakeRuns struct{}

func (fakeRuns) Get(ctx context.Context, id writ.RunID) (*writ.Run, error) {
	return &writ.Run{ID: id, State: writ.RunActive, Scope: writ.Scope{Repos: []writ.RepoScope{{Name: "acme/api", Base: "main", Write: true}}}}, nil
}

// fakeDecider allows everything but pushes outside the run's branches,
// and records what it was asked.
type fakeDecider struct {
	mu        sync.Mutex
	reqs      []*decision.Request
	denyFetch bool
}

func (f *fakeDecider) Decide(ctx context.Context, req *decision.Request) (*writ.Decision, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	d := &writ.Decision{ID: fmt.Sprintf("dec_%d", len(f.reqs)), Action: req.Action, Verdict: writ.VerdictAllow}
	if req.Action.Kind == writ.ActionGitPush && !strings.HasPrefix(req.Action.Target.Ref, "refs/heads/writ/") {
		d.Verdict, d.Reasons = writ.VerdictDeny, []writ.Reason{{Code: "protected_branch", Message: "no"}}
	}
	if req.Action.Kind == writ.ActionGitFetch && f.denyFetch {
		d.Verdict, d.Reasons = writ.VerdictDeny, fetchRefused
	}
	return d, nil
}

// fetchRefused are the reasons of a denied fetch: git shows their one
// sentence, as every enforcement point does.
var fetchRefused = []writ.Reason{{Code: "fetch_refused", Message: "not now"}, {Code: "busy", Message: "the repository is busy"}}

// fakeEvents is the log: it fills ids and times as the store does, reads
// events back (History), and fails an append when fail says so.
type fakeEvents struct {
	mu   sync.Mutex
	evs  []*writ.Event
	fail func(ev *writ.Event) error
}

func (f *fakeEvents) AppendEvent(ctx context.Context, ev *writ.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		if err := f.fail(ev); err != nil {
			return err
		}
	}
	if ev.ID == "" {
		ev.ID = writ.NewULID(time.Now(), nil)
	}
	ev.Time = time.Now().UTC()
	f.evs = append(f.evs, ev)
	return nil
}

func (f *fakeEvents) EventsOfTypes(ctx context.Context, types []string, fn func(*writ.Event) error) error {
	f.mu.Lock()
	evs := slices.Clone(f.evs)
	f.mu.Unlock()
	for _, ev := range evs {
		if slices.Contains(types, ev.Type) {
			// What the store gives back: the event as JSON decodes it.
			b, err := ev.Marshal()
			if err != nil {
				return err
			}
			var cp writ.Event
			if err := json.Unmarshal(b, &cp); err != nil {
				return err
			}
			if err := fn(&cp); err != nil {
				return err
			}
		}
	}
	return nil
}

// since returns the events appended after the first n.
func (f *fakeEvents) since(n int) []*writ.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.evs[n:])
}

func (f *fakeEvents) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.evs)
}

type rig struct {
	gw      *Gateway
	srv     *httptest.Server
	log     string // every git invocation, one argv a line
	dir     string
	decider *fakeDecider
	events  *fakeEvents
}

// newRig hosts acme/api (one commit on main) behind a git that logs its
// argv before running the real one.
func newRig(t *testing.T, opts ...func(*Config)) *rig {
	t.Helper()
	realGit, err := exec.LookPath("git")
	if err != nil {
		t.Skip("needs git")
	}
	dir := t.TempDir()
	r := &rig{dir: dir, log: filepath.Join(dir, "git.log"), decider: &fakeDecider{}, events: &fakeEvents{}}
	wrapper := filepath.Join(dir, "git")
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$*\" >> %s\nexec %s \"$@\"\n", r.log, realGit)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	up := filepath.Join(dir, "up.git")
	gitT(t, dir, "init", "-q", "--bare", "--initial-branch=main", up)
	seed := filepath.Join(dir, "seed")
	gitT(t, dir, "init", "-q", "--initial-branch=main", seed)
	os.WriteFile(filepath.Join(seed, "a.txt"), []byte("a\n"), 0o644)
	gitT(t, seed, "add", ".")
	gitT(t, seed, "commit", "-q", "-m", "init")
	gitT(t, seed, "push", "-q", up, "main")
	cfg := Config{Root: filepath.Join(dir, "repos"), Git: wrapper, Leases: fakeLeases{}, Humans: fakeHumans{}, Runs: fakeRuns{},
		Decider: r.decider, Events: r.events, History: r.events, Repos: []Repo{{Name: "acme/api", Protected: []string{"main"}}}}
	for _, o := range opts {
		o(&cfg)
	}
	r.gw, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.gw.Add(context.Background(), &writ.RepoAddRequest{Name: "acme/api", Upstream: up}, "human:admin"); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/git/", r.gw)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	os.Remove(r.log)
	return r
}

func gitT(t *testing.T, dir string, args ...string) string {
	t.Helper()
	c := exec.Command("git", args...)
	c.Dir = dir
	c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (r *rig) gitLog() string {
	b, _ := os.ReadFile(r.log)
	return string(b)
}

// TestInjectionNeverReachesGit sends path traversal and argument
// injection in repository names, services and refs: each is refused
// before any git process starts.
func TestInjectionNeverReachesGit(t *testing.T) {
	r := newRig(t)
	paths := []string{
		"/git/acme/%2e%2e.git/info/refs?service=git-upload-pack",
		"/git/%2e%2e/api.git/info/refs?service=git-upload-pack",
		"/git/acme%2fapi.git/info/refs?service=git-upload-pack",
		"/git/../../etc.git/info/refs?service=git-upload-pack",
		"/git/acme/../api.git/info/refs?service=git-upload-pack",
		"/git/acme/--upload-pack=touch%20pwned.git/info/refs?service=git-upload-pack",
		"/git/acme/--upload-pack=x.git/info/refs?service=git-upload-pack",
		"/git/-x/api.git/info/refs?service=git-upload-pack",
		"/git/acme/ext::sh%20-c%20touch%20pwned.git/info/refs?service=git-upload-pack",
		"/git/acme/ext::sh.git/info/refs?service=git-upload-pack",
		"/git/acme/.api.git/info/refs?service=git-upload-pack",
		"/git/ACME/api.git/info/refs?service=git-upload-pack",
		"/git/acme/api.git/info/refs?service=--upload-pack=touch",
		"/git/acme/api.git/info/refs?service=git-upload-pack&service=git-receive-pack",
		"/git/acme/api.git/info/refs",
		"/git/acme/api.git/HEAD",
		"/git/acme/api.git/objects/info/packs",
		"/git/acme/api.git/../../../x/info/refs?service=git-upload-pack",
	}
	for _, p := range paths {
		req, _ := http.NewRequest(http.MethodGet, r.srv.URL, nil)
		path, query, _ := strings.Cut(p, "?")
		req.URL.Opaque, req.URL.RawQuery = path, query // sent exactly as written
		req.SetBasicAuth(string(testRun), "good")
		resp, err := http.DefaultTransport.RoundTrip(req) // no redirects followed
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("%s: status 200; want a refusal", p)
		}
	}
	if log := r.gitLog(); log != "" {
		t.Errorf("git ran for a refused request:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(r.dir, "pwned")); err == nil {
		t.Error("pwned exists")
	}
	// Upstreams with transport helpers or options never reach git clone.
	for _, u := range []string{"ext::sh -c touch% pwned", "--upload-pack=touch pwned", "fd::3", "-oProxyCommand=x", "relative/path", "https://h/x\n-c"} {
		if _, err := r.gw.Add(context.Background(), &writ.RepoAddRequest{Name: "acme/x", Upstream: u}, "human:admin"); writ.ErrorKind(err) != writ.KindInvalid {
			t.Errorf("upstream %q: err %v; want invalid", u, err)
		}
	}
	for _, n := range []string{"../x", "acme/..", "acme/-x", "acme/.x", "acme/x y", "acme/x/y", "Acme/x"} {
		if _, err := r.gw.Add(context.Background(), &writ.RepoAddRequest{Name: n, Init: true}, "human:admin"); writ.ErrorKind(err) != writ.KindInvalid {
			t.Errorf("name %q: err %v; want invalid", n, err)
		}
	}
	if log := r.gitLog(); log != "" {
		t.Errorf("git ran for a refused repo add:\n%s", log)
	}
}

// pushBody builds a receive-pack request for commands with no pack.
func pushBody(caps string, cmds ...string) string {
	var b strings.Builder
	for i, c := range cmds {
		if i == 0 {
			c += "\x00" + caps
		}
		b.Write(pkt(c + "\n"))
	}
	b.WriteString("0000")
	return b.String()
}

// TestRefInjectionNeverReachesGit pushes refs with option-like and
// malformed names: refused from the commands alone, the ref never in an
// argv.
func TestRefInjectionNeverReachesGit(t *testing.T) {
	r := newRig(t)
	head := strings.TrimSpace(gitT(t, r.dir, "--git-dir", r.gw.dir("acme/api"), "rev-parse", "main"))
	for _, ref := range []string{"refs/heads/a..b", "refs/heads/x\x7f", "--upload-pack=touch", "refs/heads/a b", "refs/heads/x.lock", "HEAD", "refs/heads/a:b", "refs/tags/v1", "refs/notes/x", "refs/heads/main"} {
		os.Remove(r.log)
		body := pushBody("report-status side-band-64k", zeroID+" "+head+" "+ref)
		req, _ := http.NewRequest(http.MethodPost, r.srv.URL+"/git/acme/api.git/git-receive-pack", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-git-receive-pack-request")
		req.SetBasicAuth(string(testRun), "good")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(out), "ng ") {
			t.Errorf("ref %q: not refused: %q", ref, out)
		}
		for _, line := range strings.Split(r.gitLog(), "\n") {
			if line != "" {
				t.Errorf("ref %q: git ran: %s", ref, line)
			}
		}
	}
}

// TestPushThroughGateway pushes with the real git: the run's branch is
// accepted, a tag and main are refused with writ's reason in git's output,
// and the push is an event with its commits and paths.
func TestPushThroughGateway(t *testing.T) {
	r := newRig(t)
	u := strings.Replace(r.srv.URL, "http://", "http://"+string(testRun)+":good@", 1) + "/git/acme/api.git"
	work := filepath.Join(r.dir, "work")
	gitT(t, r.dir, "clone", "-q", u, work)
	os.MkdirAll(filepath.Join(work, "src"), 0o755)
	os.WriteFile(filepath.Join(work, "src", "b.txt"), []byte("b\n"), 0o644)
	gitT(t, work, "add", ".")
	gitT(t, work, "commit", "-q", "-m", "b")
	out := gitT(t, work, "push", "origin", "HEAD:refs/heads/writ/"+string(testRun)+"/x")
	if !strings.Contains(out, "[new branch]") {
		t.Errorf("push: %s", out)
	}
	head := strings.TrimSpace(gitT(t, work, "rev-parse", "HEAD"))
	if got := strings.TrimSpace(gitT(t, r.dir, "--git-dir", r.gw.dir("acme/api"), "rev-parse", "writ/"+string(testRun)+"/x")); got != head {
		t.Errorf("hosted branch at %s; want %s", got, head)
	}
	var pushed *writ.Event
	for _, e := range r.events.evs {
		if e.Type == EventPushed {
			pushed = e
		}
	}
	if pushed == nil || pushed.Details["outcome"] != "accepted" || fmt.Sprint(pushed.Details["paths"]) != "[src/b.txt]" || fmt.Sprint(pushed.Details["commits"]) != "["+head+"]" {
		t.Errorf("push event: %+v", pushed)
	}
	last := r.decider.reqs[len(r.decider.reqs)-1]
	if a := last.Action; a.Kind != writ.ActionGitPush || a.Target.Head != head || fmt.Sprint(a.Target.Paths) != "[src/b.txt]" || last.Via != "git" {
		t.Errorf("decided %+v", last)
	}
	for _, tc := range []struct{ ref, want string }{{"HEAD:refs/tags/v9", "tag_push"}, {"HEAD:main", "protected_branch"}} {
		c := exec.Command("git", "push", "origin", tc.ref)
		c.Dir = work
		b, err := c.CombinedOutput()
		if err == nil || !strings.Contains(string(b), "remote: writ: ") || !strings.Contains(string(b), "(writ: "+tc.want+")") {
			t.Errorf("push %s: err %v\n%s", tc.ref, err, b)
		}
	}
	// Nothing of a refused push stays: no quarantine left behind.
	if m, _ := filepath.Glob(filepath.Join(r.gw.dir("acme/api"), "writ-incoming-*")); len(m) > 0 {
		t.Errorf("quarantine left: %v", m)
	}
}

func TestSecretScan(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{`key = "AKIAIOSFODNN7EXAMPLE"`, "aws-access-key-id"},
		{"token: ghp_" + strings.Repeat("a1B2", 9), "github-token"},
		{"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n", "private-key"},
		{"pw=writ_git_01jdaaaaaaaaaaaaaaaaaaaaaa_" + strings.Repeat("A", 43), "writ-git-credential"},
		{`password = "q8Zr3Lk9Xw2Pm7Vt4Nb6Hy1Jc5"`, "high-entropy-secret"},
		// Not secrets: placeholders, words, code.
		{`password = "changeme-please-changeme"`, ""},
		{`token := os.Getenv("GITHUB_TOKEN")`, ""},
		{`apiKey: ${API_KEY_FROM_ENVIRONMENT}`, ""},
		{"sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", ""},
		{"AKIA in prose, AKIASHORT", ""},
	} {
		f := scanBlob("f", []byte(tc.in))
		got := ""
		if len(f) > 0 {
			got = f[0].Kind
		}
		if got != tc.want {
			t.Errorf("scan(%q) = %v; want %q", tc.in, f, tc.want)
		}
	}
	if f := scanBlob("bin", []byte("\x00AKIAIOSFODNN7EXAMPLE")); f != nil {
		t.Errorf("binary blob scanned: %v", f)
	}
}

func TestReadPushRequest(t *testing.T) {
	a, b := strings.Repeat("a", 40), strings.Repeat("b", 40)
	body := pushBody("report-status side-band-64k push-options agent=git/2.39", a+" "+b+" refs/heads/x", zeroID+" "+b+" refs/heads/y") + string(pkt("ci.skip\n")) + "0000PACK"
	req, err := readPushRequest(bufioReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Commands) != 2 || req.Commands[1].Ref != "refs/heads/y" || !req.Commands[1].isCreate() || !req.has("side-band-64k") || req.Caps["agent"] != "git/2.39" || len(req.Options) != 1 {
		t.Errorf("parsed %+v", req)
	}
	for _, bad := range []string{"", "zzzz", "0009abc", pushBody("", "x y z"), pushBody("", a+" "+b), "ffff" + strings.Repeat("x", 100), pushBody("", "shallow "+a)} {
		if _, err := readPushRequest(bufioReader(bad)); err == nil {
			t.Errorf("readPushRequest(%q): no error", bad)
		}
	}
}

func FuzzReadPushRequest(f *testing.F) {
	a, b := strings.Repeat("a", 40), strings.Repeat("b", 40)
	f.Add(pushBody("report-status", a+" "+b+" refs/heads/x"))
	f.Add("0000")
	f.Add("0004")
	f.Fuzz(func(t *testing.T, s string) {
		req, err := readPushRequest(bufioReader(s))
		if err != nil {
			return
		}
		for _, c := range req.Commands {
			if !isHexID(c.Old) || !isHexID(c.New) {
				t.Fatalf("bad ids accepted: %+v", c)
			}
		}
		rw := newReportWriter(req)
		rw.message("x\ny")
		_ = rw.status("ok", nil)
	})
}

func TestReportStatusSideband(t *testing.T) {
	req := &pushRequest{Caps: map[string]string{"report-status": "", "side-band-64k": ""}}
	rw := newReportWriter(req)
	rw.message("writ: no")
	out := string(rw.status("ok", []refStatus{{ref: "refs/heads/x", reason: "writ: no\nmore"}}))
	want := string(pkt("\x02writ: no\n")) + string(pkt("\x01"+string(pkt("unpack ok\n"))+string(pkt("ng refs/heads/x writ: no more\n"))+"0000")) + "0000"
	if out != want {
		t.Errorf("report:\n%q\nwant\n%q", out, want)
	}
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

// TestFetchDecided: a run's clone is one git.fetch decision (ls-refs is
// not one), and a refused fetch shows writ's reason in git's output,
// protocol v2 and v0 alike.
func TestFetchDecided(t *testing.T) {
	r := newRig(t)
	u := strings.Replace(r.srv.URL, "http://", "http://"+string(testRun)+":good@", 1) + "/git/acme/api.git"
	gitT(t, r.dir, "clone", "-q", u, filepath.Join(r.dir, "c1"))
	fetches := 0
	for _, q := range r.decider.reqs {
		if q.Action.Kind == writ.ActionGitFetch && q.Action.Target.Repo == "acme/api" && q.Via == "git" {
			fetches++
		}
	}
	if fetches != 1 {
		t.Errorf("%d git.fetch decisions for one clone; want 1", fetches)
	}
	r.decider.denyFetch = true
	code, sentence := writ.DecisionMessage(&writ.Decision{Verdict: writ.VerdictDeny, Reasons: fetchRefused})
	if sentence != "not now; the repository is busy" {
		t.Fatalf("the sentence of a fetch denied for two reasons is %q", sentence)
	}
	for _, v := range []string{"2", "0"} {
		c := exec.Command("git", "-c", "protocol.version="+v, "clone", u, filepath.Join(r.dir, "c-"+v))
		out, err := c.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "writ: "+sentence+" ("+code+", decision dec_") {
			t.Errorf("protocol %s: refused clone: err %v\n%s", v, err, out)
		}
	}
	// A credential for acme/api is told so for another repository.
	c := exec.Command("git", "ls-remote", strings.Replace(u, "acme/api", "acme/other", 1))
	out, _ := c.CombinedOutput()
	if !strings.Contains(string(out), "remote: writ: this git credential is for acme/api, not acme/other") {
		t.Errorf("other repo: %s", out)
	}
}
