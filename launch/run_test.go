package launch

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/internal/writtest"
	"github.com/writ-dev/writ/token"
)

// TestMain lets this test binary be the writ binary's sandbox helper, so
// the sandboxed launch below runs the real helper.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == SandboxArg {
		os.Exit(SandboxMain(os.Stderr))
	}
	os.Exit(m.Run())
}

const runID = "01jrunrunrunrunrunrunrunru"

// request is one request the fake writ API received.
type request struct {
	Method, Path string
	Token        string // the access token sent with the DPoP scheme
	Audience     string // token mints: the audience asked for
	Bind         bool   // token mints: a bound (refresh) token
	Reason       string // end: the reason
}

// fakeWrit stands in for writ's API as the launcher uses it: it checks
// every request's DPoP proof and bound token as writ does, mints numbered
// tokens and records what it was asked.
type fakeWrit struct {
	t   *testing.T
	srv *httptest.Server
	key *ecdsa.PrivateKey // the run's DPoP key
	jkt string

	// firstExpiry is the expiry of the run's first token (from Start).
	firstExpiry time.Time
	// deadline is the run's deadline (default: an hour away).
	deadline time.Time
	// heartbeat, when set, answers heartbeats; nil: the run is active,
	// next heartbeat in 20ms.
	heartbeat func(w http.ResponseWriter)
	// egressDenied makes the egress lease request fail.
	egressDenied bool
	tools        []string

	mu      sync.Mutex
	bound   map[string]bool // valid bound tokens
	n       int
	reqs    []request
	started bool
}

func newFakeWrit(t *testing.T) *fakeWrit {
	key, err := token.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := token.Thumbprint(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeWrit{t: t, key: key, jkt: jkt, bound: map[string]bool{"dpoptok-0": true},
		firstExpiry: time.Now().Add(time.Hour), deadline: time.Now().Add(time.Hour)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/runs/{id}/token", f.auth(f.mint))
	mux.HandleFunc("POST /v1/runs/{id}/credentials", f.auth(f.credential))
	mux.HandleFunc("POST /v1/runs/{id}/heartbeat", f.auth(func(w http.ResponseWriter, r *http.Request, _ *request) {
		f.mu.Lock()
		hb := f.heartbeat
		f.mu.Unlock()
		if hb != nil {
			hb(w)
			return
		}
		reply(w, 200, `{"run":"`+runID+`","state":"active","at":"2026-01-01T00:00:00Z","interval":"20ms","missed":0}`)
	}))
	mux.HandleFunc("POST /v1/runs/{id}/end", f.auth(func(w http.ResponseWriter, r *http.Request, rq *request) {
		var body struct{ Reason string }
		json.NewDecoder(r.Body).Decode(&body)
		rq.Reason = body.Reason
		reply(w, 200, `{"id":"`+runID+`","state":"ended"}`)
	}))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

// auth checks the run's DPoP proof and bound token, as writ's API does,
// and records the request.
func (f *fakeWrit) auth(h func(http.ResponseWriter, *http.Request, *request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != runID {
			reply(w, 404, `{"error":{"code":"not_found","message":"no such run"}}`)
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "DPoP ")
		f.mu.Lock()
		valid := ok && f.bound[tok]
		f.mu.Unlock()
		if !valid {
			f.t.Errorf("%s %s: token %q is not a valid bound token", r.Method, r.URL.Path, tok)
			reply(w, 401, `{"error":{"code":"invalid_token","message":"bad token"}}`)
			return
		}
		if _, err := token.VerifyProof(r.Header.Get("DPoP"), token.ProofCheck{Method: r.Method, URL: "http://" + r.Host + r.URL.Path,
			AccessToken: tok, JKT: f.jkt, Now: time.Now(), Leeway: time.Minute}); err != nil {
			f.t.Errorf("%s %s: DPoP proof: %v", r.Method, r.URL.Path, err)
			reply(w, 401, `{"error":{"code":"invalid_dpop_proof","message":"bad proof"}}`)
			return
		}
		rq := &request{Method: r.Method, Path: r.URL.Path, Token: tok}
		h(w, r, rq)
		f.mu.Lock()
		f.reqs = append(f.reqs, *rq)
		f.mu.Unlock()
	}
}

func (f *fakeWrit) mint(w http.ResponseWriter, r *http.Request, rq *request) {
	var body struct {
		Audience string `json:"audience"`
		Bind     bool   `json:"bind"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		f.t.Errorf("mint body: %v", err)
	}
	rq.Audience, rq.Bind = body.Audience, body.Bind
	f.mu.Lock()
	f.n++
	var tok, typ string
	switch {
	case body.Bind:
		tok, typ = fmt.Sprintf("dpoptok-%d", f.n), "DPoP"
		f.bound[tok] = true
	case body.Audience != "":
		tok, typ = fmt.Sprintf("mcptok-%d", f.n), "Bearer"
	default:
		tok, typ = fmt.Sprintf("agenttok-%d", f.n), "Bearer"
	}
	f.mu.Unlock()
	reply(w, 201, fmt.Sprintf(`{"token":%q,"tokenType":%q,"audience":%q,"expiresAt":%q}`, tok, typ, body.Audience,
		time.Now().Add(5*time.Minute).UTC().Format(time.RFC3339)))
}

func (f *fakeWrit) credential(w http.ResponseWriter, r *http.Request, rq *request) {
	var req writ.CredentialRequest
	json.NewDecoder(r.Body).Decode(&req)
	if req.Kind != writ.CredentialEgress || req.Target != "proxy" {
		f.t.Errorf("credential request %+v; want the egress lease", req)
	}
	f.mu.Lock()
	denied := f.egressDenied
	f.mu.Unlock()
	if denied {
		reply(w, 403, `{"error":{"code":"policy_denied","message":"egress denied","decision":"dec1"}}`)
		return
	}
	reply(w, 200, `{"lease":{"id":"lease1","run":"`+runID+`","kind":"egress","target":"proxy","state":"active"},`+
		`"credential":{"username":"`+runID+`","password":"writ_egress_lease_secret"}}`)
}

func (f *fakeWrit) start(ctx context.Context) (*client.Run, *ecdsa.PrivateKey, error) {
	f.mu.Lock()
	f.started = true
	f.mu.Unlock()
	run := &client.Run{Token: "dpoptok-0", TokenType: "DPoP", TokenExpiresAt: f.firstExpiry}
	run.ID, run.Agent, run.State, run.Deadline = runID, "refactor-bot", writ.RunActive, f.deadline
	run.Scope.Tools = f.tools
	return run, f.key, nil
}

func (f *fakeWrit) setHeartbeat(h func(http.ResponseWriter)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.heartbeat = h
}

func (f *fakeWrit) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

// ends are the reasons of the end requests received.
func (f *fakeWrit) ends() []string {
	var out []string
	for _, r := range f.requests() {
		if strings.HasSuffix(r.Path, "/end") {
			out = append(out, r.Reason)
		}
	}
	return out
}

// config is a launch of sh -c script in a fresh workspace, with a launcher
// environment holding secrets.
func (f *fakeWrit) config(script string) (Config, *writtest.SyncBuffer) {
	logs := &writtest.SyncBuffer{}
	return Config{
		Start: f.start, URL: f.srv.URL, Workspace: f.t.TempDir(), Self: "/opt/writ/bin/writ",
		Argv: []string{"sh", "-c", script},
		Env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + f.t.TempDir(), "AWS_SECRET_ACCESS_KEY=launcher-aws-secret",
			"GITHUB_TOKEN=ghp_launcher", "WRIT_TOKEN=writ_launcher_admin"},
		Grace: 30 * time.Second, Stdout: logs, Stderr: logs, Log: logs,
	}, logs
}

// readFile reads a report CMD left in its workspace.
func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("CMD left no %s: %v", name, err)
	}
	return string(data)
}

// TestRunCMD: CMD runs with the scrubbed environment and the run dir
// (0600 unbound token, MCP token per server, no bound token, no key);
// its exit status is the launcher's; the run is ended with that status,
// and the run dir is removed.
func TestRunCMD(t *testing.T) {
	f := newFakeWrit(t)
	f.tools = []string{"mcp:github/create_issue", "git:push"}
	cfg, logs := f.config(`env > env.txt
stat -c %a "$WRIT_RUN_DIR/token" > mode.txt
cat "$WRIT_RUN_DIR/token" > token.txt
cat "$WRIT_RUN_DIR/mcp-github.token" > mcp.txt
cat "$WRIT_RUN_DIR"/* > rundir.txt
ls -a "$WRIT_RUN_DIR" > ls.txt
echo "$WRIT_RUN_DIR" > where.txt
exit 7`)
	status, err := Run(t.Context(), cfg)
	if err != nil || status != 7 {
		t.Fatalf("Run = %d, %v; want CMD's status 7\n%s", status, err, logs)
	}
	ws := cfg.Workspace
	env := "\n" + readFile(t, ws, "env.txt")
	for _, secret := range []string{"launcher-aws-secret", "ghp_launcher", "writ_launcher_admin", "dpoptok-"} {
		if strings.Contains(env, secret) {
			t.Errorf("CMD's environment holds %q", secret)
		}
	}
	if !strings.Contains(env, "\nHTTPS_PROXY=http://"+runID+":writ_egress_lease_secret@"+strings.TrimPrefix(f.srv.URL, "http://")+"\n") {
		t.Errorf("HTTPS_PROXY is not the egress proxy with the run's lease:\n%s", env)
	}
	if !strings.Contains(env, "\nWRIT_RUN="+runID+"\n") || !strings.Contains(env, "\nHOME="+ws) {
		t.Errorf("CMD's environment lacks WRIT_RUN or a HOME in the workspace:\n%s", env)
	}
	if m := strings.TrimSpace(readFile(t, ws, "mode.txt")); m != "600" {
		t.Errorf("token file mode %s; want 600", m)
	}
	var unbound, mcp bool
	for _, r := range f.requests() {
		unbound = unbound || strings.HasSuffix(r.Path, "/token") && !r.Bind && r.Audience == ""
		mcp = mcp || strings.HasSuffix(r.Path, "/token") && !r.Bind && r.Audience == f.srv.URL+"/mcp/github"
	}
	if !unbound || !mcp {
		t.Errorf("no unbound API token or no MCP token for %s/mcp/github was minted: %+v", f.srv.URL, f.requests())
	}
	if tok := strings.TrimSpace(readFile(t, ws, "token.txt")); !strings.HasPrefix(tok, "agenttok-") {
		t.Errorf("the token file holds %q; want an unbound token", tok)
	}
	if tok := strings.TrimSpace(readFile(t, ws, "mcp.txt")); !strings.HasPrefix(tok, "mcptok-") {
		t.Errorf("the MCP token file holds %q; want the MCP token", tok)
	}
	rundir := readFile(t, ws, "rundir.txt")
	if strings.Contains(rundir, "dpoptok-") || strings.Contains(rundir, "PRIVATE KEY") || strings.Contains(rundir, `"d"`) {
		t.Errorf("the run dir holds the bound token or the DPoP key:\n%s", rundir)
	}
	if !strings.Contains(rundir, "/opt/writ/bin/writ hook claude-code") || !strings.Contains(rundir, `"--server"`) {
		t.Errorf("the run dir lacks the hook settings or the MCP config:\n%s", rundir)
	}
	for _, name := range []string{"token", "url", "run", "mcp-github.token", "claude-settings.json", "mcp.json"} {
		if !strings.Contains(readFile(t, ws, "ls.txt"), "\n"+name+"\n") {
			t.Errorf("the run dir has no %s", name)
		}
	}
	if _, err := os.Stat(strings.TrimSpace(readFile(t, ws, "where.txt"))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the run dir is still there after the launch: %v", err)
	}
	if got := f.ends(); len(got) != 1 || got[0] != "CMD exited with status 7" {
		t.Errorf("end reasons %q; want one, CMD's status", got)
	}
	for _, s := range []string{"agenttok-", "dpoptok-", "mcptok-", "writ_egress_lease_secret"} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("the launcher's log shows a credential (%s):\n%s", s, logs)
		}
	}
}

// TestRunRefreshesTokenFile: CMD's token file is replaced with a new
// unbound token every TokenRefresh, never empty in between. CMD polls the
// file (up to a minute) and exits 0 once the token changed.
func TestRunRefreshesTokenFile(t *testing.T) {
	f := newFakeWrit(t)
	cfg, logs := f.config(`t1=$(cat "$WRIT_RUN_DIR/token"); i=0
while t2=$(cat "$WRIT_RUN_DIR/token"); [ "$t2" = "$t1" ]; do
	i=$((i+1)); [ $i -gt 1200 ] && exit 1
	sleep 0.05
done
[ -n "$t2" ] || exit 2
echo "$t1 $t2" > tokens.txt`)
	cfg.TokenRefresh = 10 * time.Millisecond
	status, err := Run(t.Context(), cfg)
	if err != nil || status != 0 {
		t.Fatalf("Run = %d, %v; want 0 (the token file changed)\n%s", status, err, logs)
	}
	toks := strings.Fields(readFile(t, cfg.Workspace, "tokens.txt"))
	if len(toks) != 2 || !strings.HasPrefix(toks[1], "agenttok-") {
		t.Errorf("tokens %q; want a new unbound token", toks)
	}
}

// TestRunRefreshesBoundToken: the launcher's own DPoP-bound token is
// refreshed before it is used when it expires within two minutes, and the
// new one is used from then on; a token with an hour left is kept.
func TestRunRefreshesBoundToken(t *testing.T) {
	for _, c := range []struct {
		name    string
		expires time.Duration
		want    string // the token of every request after the first
	}{
		{"expiring", 90 * time.Second, "dpoptok-1"},
		{"fresh", time.Hour, "dpoptok-0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeWrit(t)
			f.firstExpiry = time.Now().Add(c.expires)
			cfg, logs := f.config("exit 0")
			if status, err := Run(t.Context(), cfg); err != nil || status != 0 {
				t.Fatalf("Run = %d, %v\n%s", status, err, logs)
			}
			reqs := f.requests()
			if len(reqs) < 3 {
				t.Fatalf("only %d requests", len(reqs))
			}
			first := reqs[0]
			if c.want == "dpoptok-1" {
				if !first.Bind || first.Token != "dpoptok-0" {
					t.Errorf("first request %+v; want a bound-token refresh with the first token", first)
				}
				reqs = reqs[1:]
			}
			for _, r := range reqs {
				if r.Bind {
					t.Errorf("another bound-token refresh: %+v", r)
				}
				if r.Token != c.want {
					t.Errorf("%s %s sent with %s; want %s", r.Method, r.Path, r.Token, c.want)
				}
			}
		})
	}
}

// TestRunStopsCMDWhenWritStopsTheRun: once writ answers a heartbeat saying
// the run is over (killed: its token revoked; or final), the launcher
// sends SIGTERM to CMD's whole process group: CMD's children get it too.
func TestRunStopsCMDWhenWritStopsTheRun(t *testing.T) {
	for _, c := range []struct{ status, body, code string }{
		{"401", `{"error":{"code":"token_revoked","message":"the run was killed"}}`, "token_revoked"},
		{"409", `{"error":{"code":"run_final","message":"the run is killed"}}`, "run_final"},
	} {
		t.Run(c.code, func(t *testing.T) {
			f := newFakeWrit(t)
			// CMD's child notes the SIGTERM it gets, and says when it is
			// ready for it.
			cfg, logs := f.config(`sh -c 'trap "echo TERM > child.term; exit 0" TERM; : > ready; while :; do sleep 0.05; done' & wait`)
			cfg.Grace = time.Minute // a SIGKILL would leave no child.term
			f.setHeartbeat(func(w http.ResponseWriter) {
				// Active until CMD has started its child.
				if _, err := os.Stat(filepath.Join(cfg.Workspace, "ready")); err != nil {
					reply(w, 200, `{"run":"`+runID+`","state":"active","at":"2026-01-01T00:00:00Z","interval":"20ms","missed":0}`)
					return
				}
				st := 401
				if c.status == "409" {
					st = 409
				}
				reply(w, st, c.body)
			})
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a safety net; the log tells why CMD stopped
			defer cancel()
			status, err := Run(ctx, cfg)
			if err != nil || status != 128+15 {
				t.Errorf("Run = %d, %v; want 143 (SIGTERM)", status, err)
			}
			if !strings.Contains(logs.String(), "writ stopped the run ("+c.code+")") {
				t.Errorf("the launcher did not stop CMD because writ stopped the run:\n%s", logs)
			}
			if got := readFile(t, cfg.Workspace, "child.term"); got != "TERM\n" {
				t.Errorf("CMD's child wrote %q; want it to get SIGTERM", got)
			}
		})
	}
}

// TestRunWatchdogDeadline: at the run's deadline the watchdog sends CMD
// SIGTERM.
func TestRunWatchdogDeadline(t *testing.T) {
	f := newFakeWrit(t)
	f.deadline = time.Now().Add(50 * time.Millisecond)
	cfg, logs := f.config("exec sleep 1000")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a safety net; the log tells why CMD stopped
	defer cancel()
	status, err := Run(ctx, cfg)
	if err != nil || status != 128+15 {
		t.Errorf("Run = %d, %v; want 143 (SIGTERM)", status, err)
	}
	if !strings.Contains(logs.String(), "the run reached its deadline") {
		t.Errorf("the log does not name the deadline:\n%s", logs)
	}
	if got := f.ends(); len(got) != 1 || got[0] != "CMD exited with status 143" {
		t.Errorf("end reasons %q", got)
	}
}

// TestRunGraceThenKill: when the launcher is asked to stop, CMD gets
// SIGTERM and, ignoring it, SIGKILL after the grace period.
func TestRunGraceThenKill(t *testing.T) {
	f := newFakeWrit(t)
	cfg, logs := f.config(`trap '' TERM; : > ready; while :; do sleep 0.05; done`)
	cfg.Grace = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f.setHeartbeat(func(w http.ResponseWriter) {
		if _, err := os.Stat(filepath.Join(cfg.Workspace, "ready")); err == nil {
			cancel() // SIGINT to the launcher, once CMD ignores SIGTERM
		}
		reply(w, 200, `{"run":"`+runID+`","state":"active","at":"2026-01-01T00:00:00Z","interval":"20ms","missed":0}`)
	})
	status, err := Run(ctx, cfg)
	if err != nil || status != 128+9 {
		t.Errorf("Run = %d, %v; want 137 (SIGKILL)", status, err)
	}
	l := logs.String()
	if term, kill := strings.Index(l, "the launcher was asked to stop: sending SIGTERM"), strings.Index(l, "sending SIGKILL"); term < 0 || kill < term {
		t.Errorf("the log does not show SIGTERM, then SIGKILL:\n%s", l)
	}
}

// TestRunFailsBeforeCMD: writ's own failures exit 125 and up, CMD never
// starts, and a started run is ended.
func TestRunFailsBeforeCMD(t *testing.T) {
	const touch = `: > cmd-ran`
	t.Run("no command", func(t *testing.T) {
		f := newFakeWrit(t)
		cfg, _ := f.config(touch)
		cfg.Argv = nil
		if status, err := Run(t.Context(), cfg); status != ExitLauncher || err == nil {
			t.Errorf("Run = %d, %v; want %d", status, err, ExitLauncher)
		}
	})
	t.Run("workspace is home", func(t *testing.T) {
		f := newFakeWrit(t)
		cfg, _ := f.config(touch)
		cfg.Env = append(cfg.Env, "HOME="+cfg.Workspace)
		status, err := Run(t.Context(), cfg)
		var le *Error
		if status != ExitLauncher || !errors.As(err, &le) || le.Code != ExitLauncher {
			t.Errorf("Run = %d, %v; want %d", status, err, ExitLauncher)
		}
		if f.started {
			t.Errorf("a run was started for a refused workspace")
		}
	})
	t.Run("start refused", func(t *testing.T) {
		f := newFakeWrit(t)
		cfg, _ := f.config(touch)
		cfg.Start = func(context.Context) (*client.Run, *ecdsa.PrivateKey, error) {
			return nil, nil, writ.Errorf(writ.KindDenied, "policy_denied", "no")
		}
		status, err := Run(t.Context(), cfg)
		if status != ExitLauncher || writ.ErrorCode(err) != "policy_denied" {
			t.Errorf("Run = %d, %v; want %d with writ's error", status, err, ExitLauncher)
		}
		if _, err := os.Stat(filepath.Join(cfg.Workspace, "cmd-ran")); err == nil {
			t.Errorf("CMD ran")
		}
	})
	t.Run("egress refused", func(t *testing.T) {
		f := newFakeWrit(t)
		f.mu.Lock()
		f.egressDenied = true
		f.mu.Unlock()
		cfg, _ := f.config(touch)
		status, err := Run(t.Context(), cfg)
		if status != ExitLauncher || err == nil || !strings.Contains(err.Error(), "egress lease") {
			t.Errorf("Run = %d, %v; want %d naming the egress lease", status, err, ExitLauncher)
		}
		if _, err := os.Stat(filepath.Join(cfg.Workspace, "cmd-ran")); err == nil {
			t.Errorf("CMD ran without its egress lease")
		}
		if got := f.ends(); len(got) != 1 || !strings.HasPrefix(got[0], "launcher failed: egress lease") {
			t.Errorf("end reasons %q; want the launcher's failure", got)
		}
	})
	t.Run("not found", func(t *testing.T) {
		f := newFakeWrit(t)
		cfg, _ := f.config(touch)
		cfg.Argv = []string{"writ-no-such-command-here"}
		status, err := Run(t.Context(), cfg)
		var le *Error
		if status != ExitNotFound || !errors.As(err, &le) || le.Code != ExitNotFound {
			t.Errorf("Run = %d, %v; want %d", status, err, ExitNotFound)
		}
		if got := f.ends(); len(got) != 1 {
			t.Errorf("end reasons %q; want the run ended", got)
		}
	})
}

// TestRunSandboxed runs CMD through the real sandbox helper (this test
// binary, see TestMain): CMD writes its workspace, reads its token, and
// can neither read a file outside nor write its run dir.
func TestRunSandboxed(t *testing.T) {
	if ABI() < MinABI {
		t.Skipf("Landlock ABI %d < %d", ABI(), MinABI)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(outside, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFakeWrit(t)
	cfg, logs := f.config(`r=""
check() { if eval "$2" >/dev/null 2>&1; then r="$r $1=ok"; else r="$r $1=FAIL"; fi; }
check write_workspace 'echo x > made-here'
check read_token '[ -s "$WRIT_RUN_DIR/token" ]'
check cannot_read_outside '! cat ` + outside + `'
check cannot_write_run_dir '! echo x > "$WRIT_RUN_DIR/token"'
check cannot_write_tmp '! echo x > /tmp/writ-launch-test-escape'
echo "$r" > checks.txt`)
	cfg.Sandbox, cfg.Self = true, self
	if status, err := Run(t.Context(), cfg); err != nil || status != 0 {
		t.Fatalf("Run = %d, %v\n%s", status, err, logs)
	}
	got := readFile(t, cfg.Workspace, "checks.txt")
	for _, c := range []string{"write_workspace", "read_token", "cannot_read_outside", "cannot_write_run_dir", "cannot_write_tmp"} {
		if !strings.Contains(got, " "+c+"=ok") {
			t.Errorf("check %s failed: %s", c, got)
		}
	}
}
