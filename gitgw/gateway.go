package gitgw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/decision"
)

// Event types of the gateway (docs/design.md §4.6).
const (
	EventFetched   = "git.fetched"
	EventPushed    = "git.pushed"
	EventMerge     = "merge"
	EventRepoAdded = "repo.added"
)

// Leases checks git credentials (the broker).
type Leases interface {
	CheckGit(ctx context.Context, user, password, repo string, write bool) (*writ.Lease, error)
}

// Humans checks a human's API token (package runs).
type Humans interface {
	AuthenticateHuman(ctx context.Context, token string) (*writ.Principal, error)
}

// Runs reads a run as it is now, through the run-state cache (package
// runs).
type Runs interface {
	Get(ctx context.Context, id writ.RunID) (*writ.Run, error)
}

// Decider is the policy decision point.
type Decider interface {
	Decide(ctx context.Context, req *decision.Request) (*writ.Decision, error)
}

// Events appends audit events.
type Events interface {
	AppendEvent(ctx context.Context, ev *writ.Event) error
}

// Repo is the configuration of one repository: its protected branches
// (patterns, as policy reads them) and its upstream, the remote protected
// branches are mirrored to after a merge.
type Repo struct {
	Name      string
	Protected []string
	Upstream  string
}

// Config configures a [Gateway].
type Config struct {
	// Root holds the repositories: Root/<owner>/<repo>.git.
	Root string
	// Git is the git binary (default: "git" on PATH).
	Git     string
	Leases  Leases
	Humans  Humans
	Runs    Runs
	Decider Decider
	Events  Events
	Repos   []Repo
	// MaxPackBytes caps one push's request body (default 256 MiB);
	// MaxObjects the objects in its pack (default 200000).
	MaxPackBytes int64
	MaxObjects   int
	// MaxScanBytes caps how much of one blob the secret scan reads
	// (default 1 MiB); MaxScanTotal all blobs of one push (default 64 MiB).
	MaxScanBytes int64
	MaxScanTotal int64
	// Timeout bounds one git request, its transfer included (default 10
	// minutes).
	Timeout time.Duration
	// History reads the log back for [Gateway.Reconcile] (nil: Reconcile
	// is refused).
	History History
	// Fault, when set, is called at each step of a ref move after its
	// intent is committed (FaultIntent, FaultMoved); an error stops the
	// move there as if writ had died: nothing more is done or recorded.
	// For crash-recovery tests; nil in production.
	Fault  func(point string) error
	Logger *slog.Logger
	Now    func() time.Time
}

// Gateway serves hosted repositories. It is safe for concurrent use.
type Gateway struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	git   string
	env   []string
	home  string
	repos map[string]Repo

	// mu serializes ref updates and merges per repository.
	mu    sync.Mutex
	locks map[string]*sync.Mutex
	// pushes counts accepted pushes per repository, to run gc now and then.
	pushes map[string]int
}

// New returns a gateway for cfg; it creates Root.
func New(cfg Config) (*Gateway, error) {
	if cfg.Root == "" || cfg.Leases == nil || cfg.Humans == nil || cfg.Runs == nil || cfg.Decider == nil || cfg.Events == nil {
		return nil, errors.New("gitgw: Root, Leases, Humans, Runs, Decider and Events are required")
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, now: cfg.Now, repos: map[string]Repo{}, locks: map[string]*sync.Mutex{}, pushes: map[string]int{}}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.log = g.log.With("component", "gitgw")
	if g.now == nil {
		g.now = time.Now
	}
	if g.cfg.MaxPackBytes <= 0 {
		g.cfg.MaxPackBytes = 256 << 20
	}
	if g.cfg.MaxObjects <= 0 {
		g.cfg.MaxObjects = 200000
	}
	if g.cfg.MaxScanBytes <= 0 {
		g.cfg.MaxScanBytes = 1 << 20
	}
	if g.cfg.MaxScanTotal <= 0 {
		g.cfg.MaxScanTotal = 64 << 20
	}
	if g.cfg.Timeout <= 0 {
		g.cfg.Timeout = 10 * time.Minute
	}
	for _, r := range cfg.Repos {
		if !writ.ValidRepoName(r.Name) {
			return nil, fmt.Errorf("gitgw: repo %q: want owner/repo", r.Name)
		}
		if r.Upstream != "" {
			if err := ValidateUpstream(r.Upstream); err != nil {
				return nil, fmt.Errorf("gitgw: repo %s: %w", r.Name, err)
			}
		}
		g.repos[r.Name] = r
	}
	git := cfg.Git
	if git == "" {
		git = "git"
	}
	p, err := exec.LookPath(git)
	if err != nil {
		return nil, fmt.Errorf("gitgw: the git binary: %w", err)
	}
	g.git = p
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, err
	}
	g.cfg.Root = root
	g.home = filepath.Join(root, ".home")
	if err := os.MkdirAll(g.home, 0o700); err != nil {
		return nil, fmt.Errorf("gitgw: %w", err)
	}
	// git runs with a fixed, small environment: nothing of writ's own
	// (its tokens, keys or a GIT_DIR of the operator's shell) leaks in.
	g.env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + g.home, "LANG=C", "LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/false",
		"SSH_ASKPASS=/bin/false", "GIT_ALLOW_PROTOCOL=file:http:https:ssh", "GIT_NO_REPLACE_OBJECTS=1",
		"GIT_OPTIONAL_LOCKS=0",
	}
	return g, nil
}

// ValidateUpstream checks an upstream remote URL: https, http, ssh or a
// local path (file:// or absolute); never a transport helper such as ext::.
func ValidateUpstream(s string) error {
	if s == "" || len(s) > 2048 || strings.ContainsAny(s, "\x00\r\n ") || strings.HasPrefix(s, "-") {
		return fmt.Errorf("upstream %q: want an https://, ssh:// or file:// URL or an absolute path", redactURL(s))
	}
	if filepath.IsAbs(s) && !strings.Contains(s, "::") {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" && u.Scheme != "file" {
		return fmt.Errorf("upstream %q: want an https://, ssh:// or file:// URL or an absolute path", redactURL(s))
	}
	switch u.Scheme {
	case "https", "http", "ssh", "file":
		return nil
	}
	return fmt.Errorf("upstream %q: the %q transport is not allowed; use https, ssh or file", redactURL(s), u.Scheme)
}

// redactURL drops a URL's user info (it may hold a token) for messages
// and events.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if i := strings.Index(s, "@"); i >= 0 && strings.Contains(s[:i], "://") {
			return s[:strings.Index(s, "://")+3] + "…@" + s[i+1:]
		}
		return s
	}
	u.User = nil
	return u.String()
}

// dir returns the directory of repository name, which must be valid.
func (g *Gateway) dir(name string) string {
	owner, repo, _ := strings.Cut(name, "/")
	return filepath.Join(g.cfg.Root, owner, repo+".git")
}

// exists reports whether repository name is hosted.
func (g *Gateway) exists(name string) bool {
	if !writ.ValidRepoName(name) {
		return false
	}
	st, err := os.Stat(filepath.Join(g.dir(name), "HEAD"))
	return err == nil && st.Mode().IsRegular()
}

func (g *Gateway) lock(name string) func() {
	g.mu.Lock()
	m := g.locks[name]
	if m == nil {
		m = &sync.Mutex{}
		g.locks[name] = m
	}
	g.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// upstream returns the upstream of repository name: the configured one,
// else the one it was added from.
func (g *Gateway) upstream(ctx context.Context, name string) string {
	if u := g.repos[name].Upstream; u != "" {
		return u
	}
	out, err := g.run(ctx, g.dir(name), nil, nil, "config", "--get", "writ.upstream")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// cmd returns a git command in dir (a repository, or "" for none) with
// the gateway's environment plus extra.
func (g *Gateway) cmd(ctx context.Context, dir string, extra []string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, g.git, args...)
	c.Env = append(append([]string{}, g.env...), extra...)
	if dir != "" {
		c.Env = append(c.Env, "GIT_DIR="+dir)
		c.Dir = dir
	} else {
		c.Dir = g.home
	}
	c.WaitDelay = 5 * time.Second
	return c
}

// gitError is a git command that failed, with the head of its stderr
// (for logs only: it may name paths).
type gitError struct {
	args   []string
	err    error
	stderr string
}

func (e *gitError) Error() string {
	return fmt.Sprintf("git %s: %v: %s", strings.Join(e.args[:min(len(e.args), 2)], " "), e.err, truncate(strings.TrimSpace(e.stderr), 300))
}

// run runs git and returns its stdout.
func (g *Gateway) run(ctx context.Context, dir string, extra []string, stdin io.Reader, args ...string) ([]byte, error) {
	c := g.cmd(ctx, dir, extra, args...)
	var stdout, stderr bytes.Buffer
	c.Stdin, c.Stdout, c.Stderr = stdin, &stdout, &stderr
	if err := c.Run(); err != nil {
		return stdout.Bytes(), &gitError{args: args, err: err, stderr: stderr.String()}
	}
	return stdout.Bytes(), nil
}

// Add creates a hosted repository (admins; the API checks who asks) and
// records a repo.added event.
func (g *Gateway) Add(ctx context.Context, req *writ.RepoAddRequest, actor string) (*writ.RepoInfo, error) {
	if !writ.ValidRepoName(req.Name) {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_repo", "repository name %q: want owner/repo of [a-z0-9._-], not starting with - or . and without ..", req.Name)
	}
	if req.Init == (req.Upstream != "") {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_request", "give either init (a new empty repository) or upstream (a URL to copy)")
	}
	branch := req.DefaultBranch
	if branch == "" {
		branch = "main"
	}
	if err := writ.ValidateRefName(branch); err != nil {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_branch", "defaultBranch: %v", err)
	}
	if req.Upstream != "" {
		if err := ValidateUpstream(req.Upstream); err != nil {
			return nil, writ.Errorf(writ.KindInvalid, "invalid_upstream", "%v", err)
		}
	}
	defer g.lock(req.Name)()
	dir := g.dir(req.Name)
	if _, err := os.Stat(dir); err == nil {
		return nil, writ.Errorf(writ.KindConflict, "repo_exists", "repository %s is already hosted", req.Name)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o750); err != nil {
		return nil, err
	}
	// Build it beside its final place and rename, so a half-made
	// repository is never served.
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".new-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	if req.Init {
		if _, err := g.run(ctx, "", nil, nil, "init", "--quiet", "--bare", "--initial-branch="+branch, "--", tmp); err != nil {
			return nil, err
		}
	} else {
		// An empty directory is a valid clone destination.
		if _, err := g.run(ctx, "", nil, nil, "clone", "--quiet", "--bare", "--no-hardlinks", "--", req.Upstream, tmp); err != nil {
			g.log.WarnContext(ctx, "cloning upstream failed", slog.String("repo", req.Name), slog.String("error", redactErr(err, req.Upstream)))
			return nil, writ.Errorf(writ.KindInvalid, "upstream_unreachable", "cannot copy %s: git clone failed; check the URL and that writ can reach it", redactURL(req.Upstream))
		}
		if _, err := g.run(ctx, tmp, nil, nil, "config", "writ.upstream", req.Upstream); err != nil {
			return nil, err
		}
		// A bare clone keeps an "origin" remote; writ pushes to its
		// upstream explicitly and never by a remote's name.
		_, _ = g.run(ctx, tmp, nil, nil, "remote", "remove", "origin")
	}
	for _, kv := range [][2]string{{"receive.denyDeletes", "true"}, {"receive.denyNonFastForwards", "true"}, {"core.logAllRefUpdates", "always"}, {"uploadpack.allowFilter", "true"}} {
		if _, err := g.run(ctx, tmp, nil, nil, "config", kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	info := &writ.RepoInfo{Name: req.Name, Upstream: redactURL(req.Upstream), Head: g.headBranch(ctx, req.Name)}
	details := map[string]any{"repo": req.Name, "head": info.Head}
	// The branches it starts with, so that start-up reconciliation
	// (Reconcile) finds each explained by the log.
	if refs, err := g.branches(ctx, req.Name); err == nil && len(refs) > 0 {
		details["refs"] = refs
	}
	if req.Upstream != "" {
		details["upstream"] = info.Upstream
	} else {
		details["init"] = true
	}
	if err := g.cfg.Events.AppendEvent(ctx, &writ.Event{Type: EventRepoAdded, Actor: actor, Subject: req.Name, Details: details}); err != nil {
		return nil, err
	}
	g.log.InfoContext(ctx, "repository added", slog.String("repo", req.Name), slog.String("actor", actor))
	return info, nil
}

// headBranch returns the branch HEAD of repository name points at. A
// bare repository's HEAD is a small file ("ref: refs/heads/main"), read
// without starting git.
func (g *Gateway) headBranch(ctx context.Context, name string) string {
	b, err := os.ReadFile(filepath.Join(g.dir(name), "HEAD"))
	if err == nil {
		if ref, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "ref: refs/heads/"); ok && writ.ValidateRefName(ref) == nil {
			return ref
		}
	}
	out, err := g.run(ctx, g.dir(name), nil, nil, "symbolic-ref", "--quiet", "HEAD")
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "refs/heads/")
}

// redactErr keeps an upstream URL's user info out of a logged error.
func redactErr(err error, upstream string) string {
	s := err.Error()
	if u, e := url.Parse(upstream); e == nil && u.User != nil {
		s = strings.ReplaceAll(s, u.User.String(), "…")
	}
	return s
}
