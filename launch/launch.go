// Package launch is `writ run -- CMD`: the launcher that starts a run and
// runs an agent (CMD) inside it as one governed execution path. The
// launcher holds the run's DPoP key in memory; CMD gets a scrubbed
// environment, a run dir with only an unbound ≤ 5-minute token (kept
// fresh), git wired to writ's gateway, an MCP config and Claude Code hook
// settings, HTTPS_PROXY set to writ's egress proxy with the run's egress
// lease, and — on Linux with Landlock — a sandbox applied by a helper
// process just before it execs CMD. While CMD runs the launcher sends
// heartbeats and refreshes tokens; a watchdog stops CMD at the deadline;
// when CMD exits the launcher ends the run, and writ revokes its leases.
//
// It reaches writ over HTTP only (package client), never the server or
// the store.
package launch

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
)

// Exit statuses of `writ run -- CMD` when they are not CMD's own: 125 and
// up are writ's (docs/design.md §4.9); 126 and 127 follow the shell.
const (
	// ExitLauncher: writ failed before CMD started (the run could not be
	// started, the workspace is unusable, the egress lease was refused, …).
	ExitLauncher = 125
	// ExitCannotRun: CMD was found but could not be executed.
	ExitCannotRun = 126
	// ExitNotFound: CMD was not found in the PATH given to it.
	ExitNotFound = 127
	// ExitSandbox: the sandbox was asked for and could not be applied.
	ExitSandbox = 125
)

// Config is one launch.
type Config struct {
	// Start starts the run and returns it with its first DPoP-bound token
	// and the key it is bound to (from a signed trigger, or delegated).
	Start func(ctx context.Context) (*client.Run, *ecdsa.PrivateKey, error)
	// URL is writ's base URL.
	URL string
	// Workspace is CMD's working directory, the only place it may write.
	Workspace string
	// Sandbox asks for the Landlock sandbox; ExtraRO are more read-only
	// directories for it.
	Sandbox bool
	ExtraRO []string
	// Self is the writ binary (for CMD's git credential helper, MCP proxy
	// and hooks, and for the sandbox helper).
	Self string
	// Argv is CMD.
	Argv []string
	// Env is the launcher's environment; only allowlisted variables pass.
	Env []string
	// Grace is how long CMD has between SIGTERM and SIGKILL (default 10s).
	Grace time.Duration
	// TokenRefresh is how often CMD's token files (its unbound API token
	// and MCP tokens) are replaced with new ones (default 2 minutes, 40%
	// of a token's 5-minute life). It must stay well below that life.
	TokenRefresh time.Duration
	// Stdin, Stdout, Stderr are CMD's streams; Log gets the launcher's own
	// lines (never a credential).
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Log            io.Writer
}

// Error is a launcher failure with the exit status it maps to.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func fail(code int, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// launcher is one running launch.
type launcher struct {
	cfg      Config
	run      *client.Run
	key      *ecdsa.PrivateKey
	agentDir string
	port     uint16

	termOnce sync.Once

	mu  sync.Mutex
	api *client.Client // the DPoP-bound client, token refreshed
	exp time.Time      // its token's expiry
}

func (l *launcher) logf(format string, args ...any) {
	if l.cfg.Log != nil {
		fmt.Fprintf(l.cfg.Log, "writ run: "+format+"\n", args...)
	}
}

func (l *launcher) client() *client.Client {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.api
}

// Run launches CMD under a new run and returns CMD's exit status, or an
// *Error (status 125 and up) for writ's own failures before CMD started.
func Run(ctx context.Context, cfg Config) (int, error) {
	if len(cfg.Argv) == 0 {
		return ExitLauncher, fail(ExitLauncher, "no command: writ run --trigger F -- CMD…")
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.TokenRefresh <= 0 {
		cfg.TokenRefresh = 2 * time.Minute
	}
	ws, err := checkWorkspace(cfg.Workspace, cfg.Env)
	if err != nil {
		return ExitLauncher, fail(ExitLauncher, "%v", err)
	}
	cfg.Workspace = ws
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return ExitLauncher, fail(ExitLauncher, "writ URL %q: want http(s)://host:port", cfg.URL)
	}
	port, err := urlPort(u)
	if err != nil {
		return ExitLauncher, fail(ExitLauncher, "%v", err)
	}
	if cfg.Sandbox && ABI() < MinABI {
		return ExitSandbox, fail(ExitSandbox, "the sandbox needs Landlock ABI %d or later and this kernel offers %d; run with --sandbox=false to go without (see --explain-sandbox)", MinABI, ABI())
	}
	l := &launcher{cfg: cfg, port: port}
	run, key, err := cfg.Start(ctx)
	if err != nil {
		return ExitLauncher, &Error{Code: ExitLauncher, Err: err}
	}
	l.run, l.key = run, key
	l.api = client.NewRun(cfg.URL, run.Token, key)
	l.exp = run.TokenExpiresAt
	l.logf("run %s started (agent %s, deadline %s)", run.ID, run.Agent, run.Deadline.Format(time.RFC3339))
	status, err := l.launch(ctx)
	l.end(status, err)
	return status, err
}

// end ends the run (writ revokes its leases) unless it already stopped.
func (l *launcher) end(status int, runErr error) {
	if l.agentDir != "" {
		os.RemoveAll(l.agentDir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reason := fmt.Sprintf("CMD exited with status %d", status)
	if runErr != nil {
		reason = "launcher failed: " + runErr.Error()
	}
	c, err := l.fresh(ctx)
	if err == nil {
		_, err = c.Transition(ctx, string(l.run.ID), "end", truncate(reason, 1000))
	}
	switch code := writ.ErrorCode(err); {
	case err == nil:
		l.logf("run %s ended (%s); its leases are revoked", l.run.ID, reason)
	case code == "run_final" || code == "token_revoked":
		l.logf("run %s had already stopped", l.run.ID)
	default:
		l.logf("could not end run %s: %v (writ kills it after missed heartbeats)", l.run.ID, err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// fresh returns the bound client, refreshing its token when it has less
// than a third of its life (or a minute) left.
func (l *launcher) fresh(ctx context.Context) (*client.Client, error) {
	l.mu.Lock()
	c, exp := l.api, l.exp
	l.mu.Unlock()
	if time.Until(exp) > 2*time.Minute {
		return c, nil
	}
	t, err := c.MintToken(ctx, string(l.run.ID), "", true)
	if err != nil {
		return c, err
	}
	nc := c.WithToken(t.Token)
	l.mu.Lock()
	l.api, l.exp = nc, t.ExpiresAt
	l.mu.Unlock()
	return nc, nil
}

func (l *launcher) launch(ctx context.Context) (int, error) {
	var err error
	l.agentDir, err = os.MkdirTemp("", "writ-run-")
	if err != nil {
		return ExitLauncher, fail(ExitLauncher, "run dir: %v", err)
	}
	if err := l.writeFile("run", string(l.run.ID)+"\n"); err != nil {
		return ExitLauncher, err
	}
	if err := l.writeFile("url", l.cfg.URL+"\n"); err != nil {
		return ExitLauncher, err
	}
	servers := mcpServers(l.run.Scope.Tools)
	if err := l.refreshAgentTokens(ctx, servers); err != nil {
		return ExitLauncher, fail(ExitLauncher, "agent token: %v", err)
	}
	// The client refreshAgentTokens left: its token may have just been
	// refreshed.
	egress, err := l.client().RequestCredential(ctx, string(l.run.ID), &writ.CredentialRequest{Kind: writ.CredentialEgress, Target: "proxy"})
	if err != nil {
		return ExitLauncher, fail(ExitLauncher, "egress lease: %v", err)
	}
	home := filepath.Join(l.cfg.Workspace, ".writ", "home")
	tmp := filepath.Join(l.cfg.Workspace, ".writ", "tmp")
	for _, d := range []string{home, tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return ExitLauncher, fail(ExitLauncher, "workspace: %v", err)
		}
	}
	settings, mcpConfig, err := l.writeAgentConfig(servers)
	if err != nil {
		return ExitLauncher, err
	}
	env := BuildEnv(EnvInput{
		Parent: l.cfg.Env, URL: l.cfg.URL, Run: string(l.run.ID), RunDir: l.agentDir, Home: home, TmpDir: tmp,
		Self: l.cfg.Self, ProxyUser: egress.Credential["username"], ProxyPass: egress.Credential["password"],
		Repos: l.run.Scope.Repos, ClaudeSettings: settings, MCPConfig: mcpConfig,
	})

	cmd, err := l.command(env)
	if err != nil {
		var le *Error
		if errors.As(err, &le) {
			return le.Code, err // 127: CMD not found in its PATH
		}
		return ExitLauncher, err
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return ExitNotFound, fail(ExitNotFound, "%v", err)
		}
		return ExitCannotRun, fail(ExitCannotRun, "start %s: %v", l.cfg.Argv[0], err)
	}
	pid := cmd.Process.Pid
	l.logf("CMD started (pid %d, sandbox %v)", pid, l.cfg.Sandbox)

	done := make(chan struct{})
	var wg sync.WaitGroup
	stop := func(why string) { l.terminate(pid, why, done) }
	wg.Go(func() { l.heartbeats(done, stop) })
	wg.Go(func() { l.refresher(done, servers) })
	wg.Go(func() { l.watchdog(ctx, done, stop) })
	err = cmd.Wait()
	close(done)
	wg.Wait()
	return exitStatus(cmd, err), nil
}

// command builds CMD's process: directly, or through the sandbox helper.
func (l *launcher) command(env []string) (*exec.Cmd, error) {
	var cmd *exec.Cmd
	if l.cfg.Sandbox {
		plan := l.plan()
		spec, err := json.Marshal(plan.spec(l.cfg.Argv, env))
		if err != nil {
			return nil, err
		}
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		go func() {
			w.Write(spec)
			w.Close()
		}()
		cmd = exec.Command(l.cfg.Self, SandboxArg)
		cmd.Args[0] = "writ"
		cmd.ExtraFiles = []*os.File{r}
		// The helper needs nothing from the environment; CMD's comes in
		// the spec.
		cmd.Env = []string{}
	} else {
		path, err := lookPath(l.cfg.Argv[0], env)
		if err != nil {
			return nil, &Error{Code: ExitNotFound, Err: err}
		}
		cmd = exec.Command(path, l.cfg.Argv[1:]...)
		cmd.Args[0] = l.cfg.Argv[0]
		cmd.Env = env
	}
	cmd.Dir = l.cfg.Workspace
	cmd.Stdin, cmd.Stdout, cmd.Stderr = l.cfg.Stdin, l.cfg.Stdout, l.cfg.Stderr
	// Its own process group, so the watchdog's signals reach everything
	// CMD started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

func (l *launcher) plan() SandboxPlan {
	return planFor(l.cfg.Workspace, l.agentDir, l.cfg.Self, l.cfg.ExtraRO, l.port)
}

func planFor(ws, agentDir, self string, extra []string, port uint16) SandboxPlan {
	bins := []string{self}
	if r, err := filepath.EvalSymlinks(self); err == nil && r != self {
		bins = append(bins, r)
	}
	return SandboxPlan{Workspace: ws, AgentDir: agentDir, ExtraRO: extra, Binaries: bins, Port: port}
}

// ExplainPlan is the plan --explain-sandbox describes (no run needed).
func ExplainPlan(ws, self, writURL string, extra []string, env []string) (SandboxPlan, error) {
	u, err := url.Parse(writURL)
	if err != nil {
		return SandboxPlan{}, err
	}
	port, err := urlPort(u)
	if err != nil {
		return SandboxPlan{}, err
	}
	if ws == "" {
		ws, _ = os.Getwd()
	}
	return planFor(ws, filepath.Join(os.TempDir(), "writ-run-XXXX"), self, extra, port), nil
}

func exitStatus(cmd *exec.Cmd, err error) int {
	if err == nil {
		return 0
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
	return ExitLauncher
}

// terminate stops CMD's process group: SIGTERM, then SIGKILL after the
// grace period unless CMD is done by then. Once per launch.
func (l *launcher) terminate(pid int, why string, done <-chan struct{}) {
	l.termOnce.Do(func() {
		l.logf("%s: sending SIGTERM to CMD's process group", why)
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		t := time.NewTimer(l.cfg.Grace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			l.logf("CMD still running %s after SIGTERM: sending SIGKILL to its process group", l.cfg.Grace)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	})
}

// watchdog stops CMD at the run's deadline, or when the launcher is
// asked to stop (SIGINT/SIGTERM: ctx).
func (l *launcher) watchdog(ctx context.Context, done <-chan struct{}, stop func(string)) {
	t := time.NewTimer(time.Until(l.run.Deadline))
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		stop("the run reached its deadline")
	case <-ctx.Done():
		stop("the launcher was asked to stop")
	}
}

// heartbeats tells writ the launcher is alive, at the interval writ asks
// for. When writ says the run stopped (killed, ended, expired — its token
// refused), the launcher stops CMD: it can do nothing governed any more.
func (l *launcher) heartbeats(done <-chan struct{}, stop func(string)) {
	interval := 10 * time.Second
	stopped := false
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := l.fresh(ctx)
		var hb *client.Heartbeat
		if err == nil {
			hb, err = c.Heartbeat(ctx, string(l.run.ID))
		}
		cancel()
		switch {
		case err == nil:
			if d := hb.Interval.D(); d > 0 {
				interval = d
			}
		case writ.ErrorCode(err) == "token_revoked" || writ.ErrorCode(err) == "run_final":
			if !stopped {
				stopped = true
				go stop("writ stopped the run (" + writ.ErrorCode(err) + ")")
			}
		default:
			l.logf("heartbeat: %v", err)
		}
		t := time.NewTimer(interval)
		select {
		case <-done:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// refresher keeps CMD's token files fresh: a new unbound token (and MCP
// tokens) every Config.TokenRefresh.
func (l *launcher) refresher(done <-chan struct{}, servers []string) {
	for {
		t := time.NewTimer(l.cfg.TokenRefresh)
		select {
		case <-done:
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := l.refreshAgentTokens(ctx, servers); err != nil {
			l.logf("refreshing CMD's tokens: %v", err)
		}
		cancel()
	}
}

// refreshAgentTokens mints CMD's unbound API token and one MCP token per
// MCP server in scope and writes them (0600, atomically).
func (l *launcher) refreshAgentTokens(ctx context.Context, servers []string) error {
	c, err := l.fresh(ctx)
	if err != nil {
		return err
	}
	t, err := c.MintToken(ctx, string(l.run.ID), "", false)
	if err != nil {
		return err
	}
	if err := l.writeFile("token", t.Token+"\n"); err != nil {
		return err
	}
	for _, s := range servers {
		mt, err := c.MintToken(ctx, string(l.run.ID), l.cfg.URL+"/mcp/"+s, false)
		if err != nil {
			return fmt.Errorf("MCP token for %s: %w", s, err)
		}
		if err := l.writeFile("mcp-"+s+".token", mt.Token+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes name in the agent's run dir, 0600, by rename, so a
// reader never sees half a token.
func (l *launcher) writeFile(name, data string) error {
	f, err := os.CreateTemp(l.agentDir, "."+name+".*")
	if err != nil {
		return fail(ExitLauncher, "run dir: %v", err)
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fail(ExitLauncher, "run dir: %v", err)
	}
	if err := f.Close(); err != nil {
		return fail(ExitLauncher, "run dir: %v", err)
	}
	if err := os.Rename(f.Name(), filepath.Join(l.agentDir, name)); err != nil {
		return fail(ExitLauncher, "run dir: %v", err)
	}
	return nil
}

// mcpServers are the MCP servers the scope's tools name (mcp:SERVER/…).
func mcpServers(tools []string) []string {
	var out []string
	for _, t := range tools {
		rest, ok := strings.CutPrefix(t, "mcp:")
		if !ok {
			continue
		}
		s, _, _ := strings.Cut(rest, "/")
		if writ.ValidName(s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// writeAgentConfig writes Claude Code's settings (writ's hooks) and an MCP
// config running `writ mcp proxy` per server, into the run dir (read-only
// for CMD).
func (l *launcher) writeAgentConfig(servers []string) (settings, mcpConfig string, err error) {
	hook := l.cfg.Self + " hook claude-code"
	s := map[string]any{"hooks": map[string]any{
		"PreToolUse":  []any{map[string]any{"matcher": "*", "hooks": []any{map[string]any{"type": "command", "command": hook}}}},
		"PostToolUse": []any{map[string]any{"matcher": "*", "hooks": []any{map[string]any{"type": "command", "command": hook}}}},
	}}
	ms := map[string]any{}
	for _, srv := range servers {
		ms[srv] = map[string]any{"type": "stdio", "command": l.cfg.Self, "args": []string{"mcp", "proxy", "--server", srv}}
	}
	for name, v := range map[string]any{"claude-settings.json": s, "mcp.json": map[string]any{"mcpServers": ms}} {
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return "", "", err
		}
		if err := l.writeFile(name, string(data)+"\n"); err != nil {
			return "", "", err
		}
	}
	return filepath.Join(l.agentDir, "claude-settings.json"), filepath.Join(l.agentDir, "mcp.json"), nil
}

func urlPort(u *url.URL) (uint16, error) {
	p := u.Port()
	if p == "" {
		if u.Scheme == "https" {
			return 443, nil
		}
		return 80, nil
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("writ URL port %q: %v", p, err)
	}
	return uint16(n), nil
}

// credentialPaths are the user's credential files and dirs; the workspace
// may not contain any of them (it is the one place CMD may read).
var credentialPaths = []string{".ssh", ".aws", ".config/gcloud", ".docker", ".netrc", ".git-credentials", ".config/writ", ".kube", ".gnupg"}

// checkWorkspace makes ws absolute and refuses one that would hand CMD
// the user's home or credentials: / , the home directory or any parent of
// it or of a credential path.
func checkWorkspace(ws string, env []string) (string, error) {
	if ws == "" {
		var err error
		if ws, err = os.Getwd(); err != nil {
			return "", err
		}
	}
	ws, err := filepath.Abs(ws)
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(ws); err == nil {
		ws = r
	}
	st, err := os.Stat(ws)
	if err != nil || !st.IsDir() {
		return "", fmt.Errorf("workspace %s: not a directory", ws)
	}
	home := getenv(env, "HOME")
	if h, err := os.UserHomeDir(); err == nil && home == "" {
		home = h
	}
	var guarded []string
	if home != "" {
		guarded = append(guarded, home)
		for _, p := range credentialPaths {
			guarded = append(guarded, filepath.Join(home, p))
		}
	}
	for _, g := range append(guarded, "/", "/etc", "/usr", "/proc", "/sys", "/dev") {
		if within(g, ws) {
			return "", fmt.Errorf("workspace %s contains %s: CMD may read and write all of its workspace, so it cannot be the home directory, / or a parent of credentials; use a project directory", ws, g)
		}
	}
	return ws, nil
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func getenv(env []string, k string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], k+"="); ok {
			return v
		}
	}
	return ""
}

// hostPort is writ's host:port for NO_PROXY.
func hostPort(u string) (string, string) {
	pu, err := url.Parse(u)
	if err != nil {
		return "", ""
	}
	h, p, err := net.SplitHostPort(pu.Host)
	if err != nil {
		return pu.Host, ""
	}
	return h, p
}
