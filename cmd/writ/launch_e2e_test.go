package main

// Acceptance tests of `writ run -- CMD` (issue 13): real `writ serve`
// processes, the real launcher, the real Landlock sandbox and real shell
// commands attacking it from inside. Nothing is mocked; the in-scope
// "internet" host is a local HTTP server named localhost, reachable only
// because the config names the unsafe test option egress.allowLoopbackUnsafe.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/writ-dev/writ/launch"
)

// launchEnv is a writ installation and server for the launcher tests.
type launchEnv struct {
	t     *testing.T
	dir   string // installation
	bin   string // a "writ" that is this test binary
	url   string
	token string // alice's admin token
	srv   *exec.Cmd
}

func newLaunchEnv(t *testing.T) *launchEnv {
	t.Helper()
	if launch.ABI() < launch.MinABI {
		if os.Getenv("WRIT_TEST_REQUIRE_ALL") == "1" {
			t.Fatalf("Landlock ABI %d < %d and WRIT_TEST_REQUIRE_ALL=1", launch.ABI(), launch.MinABI)
		}
		t.Skipf("Landlock ABI %d: the sandbox tests need %d", launch.ABI(), launch.MinABI)
	}
	e := &launchEnv{t: t, dir: t.TempDir()}
	binDir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e.bin = filepath.Join(binDir, "writ")
	if err := os.Symlink(exe, e.bin); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e.url = "http://" + addr
	e.run(nil, "init", "--human", "alice", "--listen", addr, e.dir)
	cfgPath := filepath.Join(e.dir, "writ.yaml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(cfg)
	s = regexp.MustCompile(`(?m)^publicURL:.*$`).ReplaceAllString(s, "publicURL: "+e.url)
	s = strings.Replace(s, "hosts: [proxy.golang.org", "hosts: [localhost, example.com, proxy.golang.org", 1)
	s += "\nruns: {heartbeat: {interval: 200ms, missed: 3}}\n" +
		"# UNSAFE, for this test only: the in-scope host is a local server.\n" +
		"egress: {allowLoopbackUnsafe: true}\n"
	if err := os.WriteFile(cfgPath, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	out := e.run(nil, "token", "create", "--bootstrap", "--config", cfgPath, "--human", "alice")
	e.token = strings.TrimSpace(out)
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *launchEnv) start() {
	e.t.Helper()
	e.srv = exec.Command(e.bin, "serve", "--config", filepath.Join(e.dir, "writ.yaml"))
	e.srv.Stderr = io.Discard
	if testing.Verbose() {
		e.srv.Stderr = os.Stderr
	}
	if err := e.srv.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.poll("the server to answer", func() bool {
		resp, err := http.Get(e.url + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
}

func (e *launchEnv) stop() {
	if e.srv != nil && e.srv.Process != nil {
		e.srv.Process.Signal(syscall.SIGTERM)
		e.srv.Wait()
		e.srv = nil
	}
}

func (e *launchEnv) restart() {
	e.stop()
	e.start()
}

// env is the environment of writ commands: the admin token and server,
// and a secret that must never reach CMD.
func (e *launchEnv) env(extra ...string) []string {
	return append([]string{"PATH=" + filepath.Dir(e.bin) + ":" + os.Getenv("PATH"), "HOME=" + e.dir, "WRIT_URL=" + e.url, "WRIT_TOKEN=" + e.token,
		"XDG_CONFIG_HOME=" + filepath.Join(e.dir, ".config"), "AWS_SECRET_ACCESS_KEY=x-launcher-secret", "GITHUB_TOKEN=ghp_launcher"}, extra...)
}

// run runs writ with args and returns stdout, failing the test on error.
func (e *launchEnv) run(env []string, args ...string) string {
	e.t.Helper()
	out, errOut, code := e.exec(env, args...)
	if code != 0 {
		e.t.Fatalf("writ %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (e *launchEnv) exec(env []string, args ...string) (string, string, int) {
	e.t.Helper()
	if env == nil {
		env = e.env()
	}
	cmd := exec.Command(e.bin, args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			e.t.Fatalf("writ %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errOut.String(), code
}

// trigger writes a signed trigger with extra `trigger new` flags.
func (e *launchEnv) trigger(flags ...string) string {
	e.t.Helper()
	tj := filepath.Join(e.t.TempDir(), "t.json")
	if err := os.WriteFile(tj, []byte(e.run(nil, append([]string{"trigger", "new", "--issuer", "alice"}, flags...)...)), 0o600); err != nil {
		e.t.Fatal(err)
	}
	signed := filepath.Join(filepath.Dir(tj), "t.signed.json")
	e.run(nil, "trigger", "sign", "--key", filepath.Join(e.dir, "alice.key"), "-o", signed, tj)
	return signed
}

func (e *launchEnv) poll(what string, ok func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type runJSON struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	EndReason string `json:"endReason"`
}

func (e *launchEnv) runState(id string) runJSON {
	e.t.Helper()
	var r runJSON
	if err := json.Unmarshal([]byte(e.run(nil, "run", "show", id, "--json")), &r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *launchEnv) activeLeases(id string) int {
	e.t.Helper()
	out, _, _ := e.exec(nil, "credential", "list", id, "--state", "active")
	if strings.Contains(out, "no leases") {
		return 0
	}
	return strings.Count(out, " active ")
}

// TestLaunchSandbox runs a shell under `writ run` that attacks its sandbox
// and checks what it may do.
func TestLaunchSandbox(t *testing.T) {
	e := newLaunchEnv(t)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello from localhost") }))
	defer site.Close()
	_, sitePort, _ := net.SplitHostPort(strings.TrimPrefix(site.URL, "http://"))
	outside := filepath.Join(e.dir, "outside-secret.txt")
	os.WriteFile(outside, []byte("s3cret"), 0o600)
	ws := t.TempDir()
	signed := e.trigger("--host", "localhost")
	// The script prints one NAME=ok|FAIL line per check; "ok" means the
	// sandbox behaved as it should.
	script := `
OUTSIDE=$1 DATADIR=$2 WRITPID=$3 PORT=$4
check() { if eval "$2" >/dev/null 2>&1; then echo "$1=ok"; else echo "$1=FAIL"; fi; }
check no_aws_secret '[ -z "$AWS_SECRET_ACCESS_KEY" ]'
check no_github_token '[ -z "$GITHUB_TOKEN" ] && [ -z "$WRIT_TOKEN" ]'
check home_in_workspace 'case "$HOME" in "$PWD"/*) true;; *) false;; esac'
check token_file '[ -s "$WRIT_RUN_DIR/token" ] && [ ! -e "$WRIT_RUN_DIR/dpop.key" ]'
check token_mode '[ "$(stat -c %a "$WRIT_RUN_DIR/token")" = 600 ]'
check git_helper '[ "$GIT_CONFIG_KEY_1" = credential.helper ] && case "$GIT_CONFIG_VALUE_1" in /*" git-credential") true;; *) false;; esac'
check write_workspace 'echo hi > ./made-here && [ -s ./made-here ]'
check cannot_read_outside '! cat "$OUTSIDE"'
check cannot_read_writ_keys '! cat "$DATADIR/keys/identity.pem"'
check cannot_write_tmp '! touch /tmp/writ-sandbox-escape'
check cannot_read_launcher_environ '! cat /proc/$PPID/environ'
check cannot_signal_writ '! kill -0 "$WRITPID"'
check can_signal_itself 'kill -0 $$'
check cannot_connect_other_port '! curl -sS --max-time 5 --noproxy "*" "http://127.0.0.1:$PORT/"'
check proxy_in_scope '[ "$(curl -sS --max-time 10 --noproxy "" -p -x "$HTTPS_PROXY" "http://localhost:$PORT/")" = "hello from localhost" ]'
curl -sS --max-time 10 --noproxy "" -p -x "$HTTPS_PROXY" "http://localhost:$PORT/" 2>&1 | sed "s/^/in_scope_says: /"; echo
check proxy_out_of_scope '! curl -sS --max-time 10 --noproxy "" -p -x "$HTTPS_PROXY" "http://example.org:80/"'
curl -sS --max-time 10 --noproxy "" -p -x "$HTTPS_PROXY" -o /dev/null "http://example.org:80/" 2>&1 | sed 's/^/out_of_scope_says: /'
check proxy_bad_credential '! curl -sS --max-time 10 --noproxy "" -p -x "http://$WRIT_RUN:writ_egress_nope@${WRIT_URL#http://}" "http://localhost:$PORT/"'
check proxy_loopback_by_ip_name '! curl -sS --max-time 10 --noproxy "" -p -x "$HTTPS_PROXY" "http://127.0.0.1:$PORT/"'
exit 7
`
	args := []string{"run", "--trigger", signed, "--workspace", ws, "--", "sh", "-c", script, "sh", outside, e.dir, fmt.Sprint(e.srv.Process.Pid), sitePort}
	out, errOut, code := e.exec(nil, args...)
	t.Logf("CMD output:\n%s\nlauncher:\n%s", out, errOut)
	if code != 7 {
		t.Errorf("exit status = %d; want CMD's own, 7", code)
	}
	for _, name := range []string{"no_aws_secret", "no_github_token", "home_in_workspace", "token_file", "token_mode", "git_helper",
		"write_workspace", "cannot_read_outside", "cannot_read_writ_keys", "cannot_write_tmp", "cannot_read_launcher_environ", "cannot_signal_writ",
		"cannot_connect_other_port", "can_signal_itself", "proxy_in_scope", "proxy_out_of_scope", "proxy_bad_credential", "proxy_loopback_by_ip_name"} {
		if !strings.Contains(out, "\n"+name+"=ok") && !strings.HasPrefix(out, name+"=ok") {
			t.Errorf("check %s did not pass", name)
		}
	}
	if !strings.Contains(out, "403") {
		t.Errorf("the out-of-scope refusal does not show the proxy's 403")
	}
	// The launcher ended the run; its leases (the egress lease) are revoked.
	m := regexp.MustCompile(`run ([0-9a-z]{26}) started`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("no run id in the launcher's output")
	}
	if r := e.runState(m[1]); r.State != "ended" {
		t.Errorf("run after CMD exited = %s; want ended", r.State)
	}
	e.poll("the run's leases to be revoked", func() bool { return e.activeLeases(m[1]) == 0 })
	// Every connection was a decision event; the audit log has no egress secret.
	var bodies string
	e.poll("the egress decisions in the audit log", func() bool {
		bodies = auditBodies(t, e.run(nil, "audit", "export"))
		return strings.Contains(bodies, `"action":"egress"`) && strings.Contains(bodies, `"via":"egress"`)
	})
	if strings.Contains(bodies, "writ_egress_") {
		t.Errorf("the audit log holds an egress credential")
	}
}

// TestLaunchWatchdog: a CMD that ignores SIGTERM gets SIGTERM at the
// deadline and SIGKILL after the grace period.
func TestLaunchWatchdog(t *testing.T) {
	e := newLaunchEnv(t)
	signed := e.trigger("--duration", "3s")
	ws := t.TempDir()
	out, errOut, code := e.exec(nil, "run", "--trigger", signed, "--workspace", ws, "--grace", "1s", "--",
		"sh", "-c", `trap 'echo got TERM' TERM; while :; do sleep 0.1; done`)
	t.Logf("CMD:\n%s\nlauncher:\n%s", out, errOut)
	if code != 128+9 {
		t.Errorf("exit status = %d; want 137 (SIGKILL)", code)
	}
	term := strings.Index(errOut, "sending SIGTERM")
	kill := strings.Index(errOut, "sending SIGKILL")
	if term < 0 || kill < 0 || kill < term {
		t.Errorf("launcher log does not show SIGTERM then SIGKILL")
	}
	if !strings.Contains(out, "got TERM") {
		t.Errorf("CMD did not get SIGTERM first")
	}
}

// TestLaunchKilledLauncher: SIGKILL of the launcher still ends the run
// (missed heartbeats) and revokes its leases.
func TestLaunchKilledLauncher(t *testing.T) {
	e := newLaunchEnv(t)
	signed := e.trigger()
	ws := t.TempDir()
	cmd := exec.Command(e.bin, "run", "--trigger", signed, "--workspace", ws, "--", "sleep", "120")
	cmd.Env = e.env()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	var run string
	cmdPID := 0
	for (run == "" || cmdPID == 0) && sc.Scan() {
		if m := regexp.MustCompile(`run ([0-9a-z]{26}) started`).FindStringSubmatch(sc.Text()); m != nil {
			run = m[1]
		}
		if m := regexp.MustCompile(`CMD started \(pid (\d+)`).FindStringSubmatch(sc.Text()); m != nil {
			fmt.Sscan(m[1], &cmdPID)
		}
	}
	go io.Copy(io.Discard, stderr)
	if run == "" || cmdPID == 0 {
		t.Fatal("the launcher did not report its run and CMD")
	}
	defer syscall.Kill(-cmdPID, syscall.SIGKILL)
	e.poll("the egress lease", func() bool { return e.activeLeases(run) > 0 })
	cmd.Process.Kill()
	cmd.Wait()
	e.poll("the run to be killed", func() bool { return e.runState(run).State == "killed" })
	if r := e.runState(run); r.EndReason != "missed_heartbeats" {
		t.Errorf("end reason = %q; want missed_heartbeats", r.EndReason)
	}
	e.poll("its leases to be revoked", func() bool { return e.activeLeases(run) == 0 })
}

// TestKillSwitchesDurable: freeze and agent disable refuse tokens and run
// starts, revoke leases, and survive a restart.
func TestKillSwitchesDurable(t *testing.T) {
	e := newLaunchEnv(t)
	start := func() (string, []string) {
		dir := filepath.Join(t.TempDir(), "run")
		out := e.run(nil, "run", "start", "--trigger", e.trigger(), "--run-dir", dir, "--json")
		var r runJSON
		json.Unmarshal([]byte(out), &r)
		return r.ID, append(e.env(), "WRIT_TOKEN=", "WRIT_RUN_DIR="+dir)
	}
	id, runEnv := start()
	e.run(runEnv, "credential", "get", "--kind", "git", "--target", "acme/api")
	if e.activeLeases(id) != 1 {
		t.Fatal("no lease to revoke")
	}
	e.run(nil, "freeze", "--reason", "test")
	if _, errOut, code := e.exec(runEnv, "credential", "get", "--kind", "git", "--target", "acme/api"); code == 0 || !strings.Contains(errOut, "token_revoked") {
		t.Errorf("a frozen run's token: exit %d %s; want token_revoked", code, errOut)
	}
	e.poll("the lease to be revoked", func() bool { return e.activeLeases(id) == 0 })
	if _, errOut, code := e.exec(nil, "run", "start", "--trigger", e.trigger()); code == 0 || !strings.Contains(errOut, "frozen") {
		t.Errorf("run start while frozen: exit %d %s; want refused (frozen)", code, errOut)
	}
	e.restart()
	if _, errOut, code := e.exec(nil, "run", "start", "--trigger", e.trigger()); code == 0 || !strings.Contains(errOut, "frozen") {
		t.Errorf("run start while frozen, after a restart: exit %d %s; want refused (frozen)", code, errOut)
	}
	e.run(nil, "freeze", "--off")
	if r := e.runState(id); r.State != "active" {
		t.Errorf("run after the freeze was lifted = %s; want active", r.State)
	}
	e.run(runEnv, "credential", "get", "--kind", "git", "--target", "acme/api")

	out := e.run(nil, "agent", "disable", "refactor-bot", "--reason", "test")
	if !strings.Contains(out, "1 run(s) killed") {
		t.Errorf("agent disable: %s", out)
	}
	if r := e.runState(id); r.State != "killed" {
		t.Errorf("run of a disabled agent = %s; want killed", r.State)
	}
	if _, errOut, code := e.exec(runEnv, "credential", "get", "--kind", "git", "--target", "acme/api"); code == 0 || !strings.Contains(errOut, "token_revoked") {
		t.Errorf("a disabled agent's token: exit %d %s; want token_revoked", code, errOut)
	}
	e.poll("the lease to be revoked", func() bool { return e.activeLeases(id) == 0 })
	e.restart()
	if _, errOut, code := e.exec(nil, "run", "start", "--trigger", e.trigger()); code == 0 || !strings.Contains(errOut, "agent_disabled") {
		t.Errorf("run start of a disabled agent after a restart: exit %d %s; want agent_disabled", code, errOut)
	}
	e.run(nil, "agent", "enable", "refactor-bot")
	start()
	audit := e.run(nil, "audit", "export")
	for _, ev := range []string{`"agent.disabled"`, `"agent.enabled"`, `"freeze"`} {
		if !strings.Contains(audit, ev) {
			t.Errorf("audit log lacks %s", ev)
		}
	}
	_ = context.Background
}

// auditBodies returns the stored bytes of every entry of a `writ audit
// export` (its lines after the first carry each entry's body in base64).
func auditBodies(t *testing.T, export string) string {
	t.Helper()
	var b strings.Builder
	for i, line := range strings.Split(strings.TrimSpace(export), "\n") {
		if i == 0 || line == "" {
			continue
		}
		var e struct {
			Body []byte `json:"body"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("export line %d: %v", i, err)
		}
		b.Write(e.Body)
		b.WriteByte('\n')
	}
	return b.String()
}
