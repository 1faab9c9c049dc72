package server_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/server"
)

// gitRun is a run with a git credential for acme/api on a server whose
// acme/api is a copy of a local upstream.
type gitRun struct {
	t       testing.TB
	dir     string // scratch space
	up      string // the upstream bare repository
	url     string // the run's clone URL, credential included
	run     writ.RunID
	runC    *client.Client
	human   *client.Client
	srvURL  string
	workDir string
}

func gitCmd(t testing.TB, dir string, args ...string) string {
	t.Helper()
	c := exec.Command("git", args...)
	c.Dir = dir
	c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// seedUpstream makes a bare repository with one commit on main holding
// files (path → content).
func seedUpstream(t testing.TB, dir string, files map[string][]byte) string {
	t.Helper()
	up := filepath.Join(dir, "up.git")
	gitCmd(t, dir, "init", "-q", "--bare", "--initial-branch=main", up)
	seed := filepath.Join(dir, "seed")
	gitCmd(t, dir, "init", "-q", "--initial-branch=main", seed)
	for p, b := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(seed, p)), 0o755)
		if err := os.WriteFile(filepath.Join(seed, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitCmd(t, seed, "add", ".")
	gitCmd(t, seed, "commit", "-q", "-m", "init")
	gitCmd(t, seed, "push", "-q", up, "main")
	return up
}

func newGitRun(t testing.TB, p *policyRig, files map[string][]byte) *gitRun {
	t.Helper()
	return newGitRunRepo(t, p, "acme/api", files)
}

// newGitRunRepo is newGitRun for repository name.
func newGitRunRepo(t testing.TB, p *policyRig, name string, files map[string][]byte) *gitRun {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	ctx := context.Background()
	dir := t.TempDir()
	g := &gitRun{t: t, dir: dir, human: p.human, srvURL: p.r.url}
	g.up = seedUpstream(t, dir, files)
	if _, err := p.human.AddRepo(ctx, &writ.RepoAddRequest{Name: name, Upstream: g.up}); err != nil {
		t.Fatal(err)
	}
	g.runC, g.run = p.run(func(tr *writ.Trigger) { tr.Scope.Repos[0].Name, tr.Scope.Repos[0].Paths = name, []string{"src/**"} })
	cred, err := g.runC.RequestCredential(ctx, string(g.run), &writ.CredentialRequest{Kind: "git", Target: name, Permissions: []string{"write"}})
	if err != nil {
		t.Fatal(err)
	}
	g.url = strings.Replace(p.r.url, "http://", "http://"+cred.Credential["username"]+":"+cred.Credential["password"]+"@", 1) + "/git/" + name + ".git"
	g.workDir = filepath.Join(dir, "work")
	gitCmd(t, dir, "-c", "credential.helper=", "clone", "-q", g.url, g.workDir)
	return g
}

// commit writes path in the work tree and commits it.
func (g *gitRun) commit(path, content string) string {
	os.MkdirAll(filepath.Dir(filepath.Join(g.workDir, path)), 0o755)
	if err := os.WriteFile(filepath.Join(g.workDir, path), []byte(content), 0o644); err != nil {
		g.t.Fatal(err)
	}
	gitCmd(g.t, g.workDir, "add", ".")
	gitCmd(g.t, g.workDir, "commit", "-q", "-m", "change "+path)
	return gitCmd(g.t, g.workDir, "rev-parse", "HEAD")
}

func (g *gitRun) push() {
	gitCmd(g.t, g.workDir, "-c", "credential.helper=", "push", "-q", "origin", "HEAD:refs/heads/writ/"+string(g.run)+"/work")
}

// TestMergeMirrorDivergence: an upstream that moved on its own is never
// overwritten: the merge is refused with the divergence, and writ's main
// and the upstream keep what they had; once the upstream is back, the
// approved head lands on both.
func TestMergeMirrorDivergence(t *testing.T) {
	a := startApprovals(t, func(cfg *server.Config) {})
	g := newGitRun(t, a.policyRig, map[string][]byte{"src/a.go": []byte("package src\n")})
	ctx := context.Background()
	base := gitCmd(t, g.dir, "--git-dir", g.up, "rev-parse", "main")
	head := g.commit("src/b.go", "package src\n// b\n")
	g.push()
	_, err := a.human.Merge(ctx, "acme/api", &writ.MergeRequest{Run: g.run})
	we, ok := err.(*writ.Error)
	if !ok || we.Kind != writ.KindApprovalPending || we.Approval == "" {
		t.Fatalf("first merge: %v; want a pending approval", err)
	}
	if _, err := a.approve("bob", we.Approval); err != nil {
		t.Fatal(err)
	}
	// Someone commits to the upstream's main directly.
	other := filepath.Join(g.dir, "other")
	gitCmd(t, g.dir, "clone", "-q", g.up, other)
	os.WriteFile(filepath.Join(other, "x"), []byte("x"), 0o644)
	gitCmd(t, other, "add", ".")
	gitCmd(t, other, "commit", "-q", "-m", "upstream only")
	gitCmd(t, other, "push", "-q", "origin", "main")
	moved := gitCmd(t, other, "rev-parse", "HEAD")

	_, err = a.human.Merge(ctx, "acme/api", &writ.MergeRequest{Run: g.run})
	if we, ok := err.(*writ.Error); !ok || we.Code != "upstream_diverged" || !strings.Contains(we.Message, moved[:12]) {
		t.Fatalf("merge over a diverged upstream: %v; want upstream_diverged naming %s", err, moved[:12])
	}
	if got := gitCmd(t, g.dir, "--git-dir", g.up, "rev-parse", "main"); got != moved {
		t.Errorf("upstream main %s; want it untouched at %s", got, moved)
	}
	if got := gitCmd(t, g.dir, "-c", "credential.helper=", "ls-remote", g.url, "refs/heads/main"); !strings.HasPrefix(got, base) {
		t.Errorf("writ's main moved: %s", got)
	}
	// The upstream goes back; the approval (not used by the refusal) merges.
	gitCmd(t, other, "push", "-q", "--force", "origin", base+":refs/heads/main")
	res, err := a.human.Merge(ctx, "acme/api", &writ.MergeRequest{Run: g.run})
	if err != nil {
		t.Fatal(err)
	}
	if res.Head != head || res.Base != base || !res.Mirrored || res.Approval != we.Approval {
		t.Errorf("merge result %+v; want base %s head %s mirrored by %s", res, base, head, we.Approval)
	}
	if got := gitCmd(t, g.dir, "--git-dir", g.up, "rev-parse", "main"); got != head {
		t.Errorf("upstream main at %s; want the approved %s", got, head)
	}
	// A run's token may ask to merge its own work only.
	_, err = g.runC.Merge(ctx, "acme/api", &writ.MergeRequest{Run: "01jdaaaaaaaaaaaaaaaaaaaaaa"})
	if writ.ErrorKind(err) != writ.KindDenied {
		t.Errorf("run merging another run's work: %v; want denied", err)
	}
}

// directGit serves dir's repositories with git http-backend (the peer the
// gateway is measured against), pushes allowed.
func directGit(t testing.TB, root string, st *serverTime) string {
	gitBin, _ := exec.LookPath("git")
	h := &cgi.Handler{Path: gitBin, Args: []string{"http-backend"}, Env: []string{
		"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=bench", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}}
	var hh http.Handler = http.StripPrefix("/git", h)
	if st != nil {
		inner := hh
		hh = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t0 := time.Now()
			inner.ServeHTTP(w, r)
			if strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
				st.add(time.Since(t0))
			}
		})
	}
	srv := httptest.NewServer(hh)
	t.Cleanup(srv.Close)
	return srv.URL + "/git"
}

// BenchmarkGitPush pushes one small commit per op, through the gateway
// (credential check, pack quarantine, paths, secret scan, a git.push
// decision, event) and directly to git http-backend, side by side.
// go test ./server -run '^$' -bench GitPush -benchtime 100x
func BenchmarkGitPush(b *testing.B) {
	d := prepareDev(b)
	for _, pr := range d.cfg.Profiles {
		pr.Budgets = writ.Budgets{} // 100s of pushes a minute
	}
	phases := &phaseSums{sums: map[string]time.Duration{}}
	r := start(b, d.cfg, server.Options{Logger: slog.New(phases)}, d.finish(b))
	p := &policyRig{t: b, d: d, r: r, human: client.New(r.url, d.env.Token)}
	g := newGitRun(b, p, map[string][]byte{"src/a.go": []byte("package src\n")})
	// The peer: the same repository, served by git http-backend.
	root := filepath.Join(g.dir, "direct")
	gitCmd(b, g.dir, "clone", "-q", "--bare", g.up, filepath.Join(root, "acme", "api.git"))
	directSrv := &serverTime{}
	directURL := directGit(b, root, directSrv) + "/acme/api.git"
	directWork := filepath.Join(g.dir, "direct-work")
	gitCmd(b, g.dir, "clone", "-q", directURL, directWork)
	for _, tc := range []struct {
		name, work string
		ref        string
	}{
		{"gateway", g.workDir, "HEAD:refs/heads/writ/" + string(g.run) + "/bench"},
		{"direct", directWork, "HEAD:refs/heads/writ/" + string(g.run) + "/bench"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			phases.reset()
			directSrv.reset()
			n := 0
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				os.WriteFile(filepath.Join(tc.work, "src", "a.go"), fmt.Appendf(nil, "package src\n// %d %s\n", i, tc.name), 0o644)
				gitCmd(b, tc.work, "commit", "-q", "-am", "bench")
				b.StartTimer()
				gitCmd(b, tc.work, "-c", "credential.helper=", "push", "-q", "origin", tc.ref)
				n++
			}
			if tc.name == "direct" {
				b.ReportMetric(float64(directSrv.get())/float64(n)/1e6, "receive-pack-ms/op")
				return
			}
			for name, d := range phases.get() {
				b.ReportMetric(float64(d)/float64(n)/1e6, name+"-ms/op")
			}
		})
	}
}

// BenchmarkGitClone clones a repository of WRIT_BENCH_CLONE_MB (default
// 50) MB of incompressible files through the gateway (a git.fetch
// decision and a git.fetched event per clone) and from git http-backend.
// go test ./server -run '^$' -bench GitClone -benchtime 5x
func BenchmarkGitClone(b *testing.B) {
	mb := 50
	if v := os.Getenv("WRIT_BENCH_CLONE_MB"); v != "" {
		fmt.Sscan(v, &mb)
	}
	files := map[string][]byte{}
	for i := range mb * 10 {
		buf := make([]byte, 100<<10)
		rand.Read(buf)
		files[fmt.Sprintf("src/blob%04d.bin", i)] = buf
	}
	p := startPolicy(b, func(cfg *server.Config) {
		for _, pr := range cfg.Profiles {
			pr.Budgets = writ.Budgets{}
		}
	})
	g := newGitRun(b, p, files)
	root := filepath.Join(g.dir, "direct")
	gitCmd(b, g.dir, "clone", "-q", "--bare", g.up, filepath.Join(root, "acme", "api.git"))
	directURL := directGit(b, root, nil) + "/acme/api.git"
	for _, tc := range []struct{ name, url string }{{"gateway", g.url}, {"direct", directURL}} {
		b.Run(tc.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				dst := filepath.Join(g.dir, fmt.Sprintf("clone-%s-%d", tc.name, i))
				gitCmd(b, g.dir, "-c", "credential.helper=", "clone", "-q", "--bare", tc.url, dst)
				b.StopTimer()
				os.RemoveAll(dst)
				b.StartTimer()
			}
			b.SetBytes(int64(mb) << 20)
		})
	}
}

// serverTime sums how long the peer's receive-pack requests took.
type serverTime struct {
	mu  sync.Mutex
	sum time.Duration
}

func (s *serverTime) add(d time.Duration) { s.mu.Lock(); s.sum += d; s.mu.Unlock() }
func (s *serverTime) reset()              { s.mu.Lock(); s.sum = 0; s.mu.Unlock() }
func (s *serverTime) get() time.Duration  { s.mu.Lock(); defer s.mu.Unlock(); return s.sum }

// phaseSums is a log handler that sums the gateway's "push timings"
// debug records by phase (everything else is dropped).
type phaseSums struct {
	mu   sync.Mutex
	sums map[string]time.Duration
}

func (p *phaseSums) Enabled(ctx context.Context, l slog.Level) bool { return true }
func (p *phaseSums) WithAttrs([]slog.Attr) slog.Handler             { return p }
func (p *phaseSums) WithGroup(string) slog.Handler                  { return p }
func (p *phaseSums) Handle(ctx context.Context, r slog.Record) error {
	if r.Message != "push timings" {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "phases" {
			for _, ph := range a.Value.Group() {
				p.sums[ph.Key] += ph.Value.Duration()
			}
		}
		return true
	})
	return nil
}

func (p *phaseSums) reset() { p.mu.Lock(); clear(p.sums); p.mu.Unlock() }

func (p *phaseSums) get() map[string]time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]time.Duration{}
	for k, v := range p.sums {
		out[k] = v
	}
	return out
}

// TestMergeIntoEmptyRepository: a repository added with --init has no
// main; the first approved merge creates it at exactly the approved head.
func TestMergeIntoEmptyRepository(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	a := startApprovals(t, func(cfg *server.Config) {})
	ctx := context.Background()
	if _, err := a.human.AddRepo(ctx, &writ.RepoAddRequest{Name: "acme/api", Init: true}); err != nil {
		t.Fatal(err)
	}
	runC, run := a.run(func(tr *writ.Trigger) { tr.Scope.Repos[0].Paths = []string{"src/**"} })
	cred, err := runC.RequestCredential(ctx, string(run), &writ.CredentialRequest{Kind: "git", Target: "acme/api", Permissions: []string{"write"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	u := strings.Replace(a.r.url, "http://", "http://"+cred.Credential["username"]+":"+cred.Credential["password"]+"@", 1) + "/git/acme/api.git"
	work := filepath.Join(dir, "work")
	gitCmd(t, dir, "init", "-q", "--initial-branch=main", work)
	os.MkdirAll(filepath.Join(work, "src"), 0o755)
	os.WriteFile(filepath.Join(work, "src", "a.go"), []byte("package src\n"), 0o644)
	gitCmd(t, work, "add", ".")
	gitCmd(t, work, "commit", "-q", "-m", "first")
	head := gitCmd(t, work, "rev-parse", "HEAD")
	gitCmd(t, work, "-c", "credential.helper=", "push", "-q", u, "HEAD:refs/heads/writ/"+string(run)+"/first")
	_, err = a.human.Merge(ctx, "acme/api", &writ.MergeRequest{Run: run})
	we, ok := err.(*writ.Error)
	if !ok || we.Approval == "" {
		t.Fatalf("merge: %v; want a pending approval", err)
	}
	if _, err := a.approve("bob", we.Approval); err != nil {
		t.Fatal(err)
	}
	res, err := a.human.Merge(ctx, "acme/api", &writ.MergeRequest{Run: run})
	if err != nil {
		t.Fatal(err)
	}
	if res.Base != "" || res.Head != head || res.Into != "main" {
		t.Errorf("merge %+v; want main created at %s", res, head)
	}
	if got := gitCmd(t, dir, "-c", "credential.helper=", "ls-remote", u, "refs/heads/main"); !strings.HasPrefix(got, head) {
		t.Errorf("main: %q; want %s", got, head)
	}
}

// TestMergeAfterTheRunEnded: the usual order — the agent pushes and its run
// ends, then a human reviews and merges — works behind the same approval;
// a killed run's work is never merged.
func TestMergeAfterTheRunEnded(t *testing.T) {
	a := startApprovals(t, func(cfg *server.Config) {})
	ctx := context.Background()
	g := newGitRun(t, a.policyRig, map[string][]byte{"src/a.go": []byte("package src\n")})
	head := g.commit("src/b.go", "package src\n// b\n")
	g.push()
	if _, err := g.runC.Transition(ctx, string(g.run), "end", "done"); err != nil {
		t.Fatal(err)
	}
	_, err := a.human.Merge(ctx, "acme/api", &writ.MergeRequest{Run: g.run})
	we, ok := err.(*writ.Error)
	if !ok || we.Kind != writ.KindApprovalPending || we.Approval == "" {
		t.Fatalf("merge of an ended run's work: %v; want a pending approval", err)
	}
	if _, err := a.approve("bob", we.Approval); err != nil {
		t.Fatal(err)
	}
	res, err := a.human.Merge(ctx, "acme/api", &writ.MergeRequest{Run: g.run})
	if err != nil || res.Head != head {
		t.Fatalf("approved merge of an ended run's work: %+v, %v; want main at %s", res, err, head)
	}

	// A killed run: refused, however it is asked.
	k := newGitRunRepo(t, a.policyRig, "acme/web", map[string][]byte{"src/a.go": []byte("package src\n")})
	k.commit("src/c.go", "package src\n")
	k.push()
	if _, err := a.human.Transition(ctx, string(k.run), "kill", "misbehaved"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.human.Merge(ctx, "acme/web", &writ.MergeRequest{Run: k.run}); writ.ErrorKind(err) != writ.KindDenied {
		t.Errorf("merge of a killed run's work: %v; want denied", err)
	}
}
