package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/launch"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/trigger"
)

// TestClaudeCodeUnderLauncher: the real Claude Code runs under `writ run`
// with no writ hooks in its settings at all, driven by the scripted
// stand-in for the model API; its Bash tool clones the repository through
// writ's git gateway (the launcher wires git to writ's credential helper)
// and pushes to main. The gateway refuses the push and git shows writ's
// reason: enforcement does not depend on the agent's cooperation.
func TestClaudeCodeUnderLauncher(t *testing.T) {
	t.Run("no-sandbox", func(t *testing.T) { claudeLaunchPush(t, false) })
	// In the Landlock sandbox: Claude Code can connect only to writ's
	// port, so its model calls (to the loopback stand-in, named
	// model.test) go through writ's egress proxy, which allows loopback
	// only under the explicitly unsafe test option.
	t.Run("sandbox", func(t *testing.T) {
		if launch.ABI() < launch.MinABI {
			if os.Getenv("WRIT_TEST_REQUIRE_ALL") == "1" {
				t.Fatal("Landlock is not available here and WRIT_TEST_REQUIRE_ALL=1")
			}
			t.Skip("Landlock is not available on this kernel")
		}
		claudeLaunchPush(t, true)
	})
}

func claudeLaunchPush(t *testing.T, sandbox bool) {
	claude := claudeBinary(t)
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	writBin := claudeBuildWrit(t)
	w := claudeStartWritWith(t, func(cfg *server.Config) {
		cfg.Egress.AllowLoopbackUnsafe = true // the model stand-in listens on loopback: a test-only option
		cfg.Egress.ModelHosts = []string{"model.test"}
		cfg.Egress.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			if host == "model.test" {
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
			}
			return nil, fmt.Errorf("no such host %s", host)
		}
	}, "shell:git")
	ctx := context.Background()

	// The hosted repository, copied from a local upstream with one commit.
	dir := t.TempDir()
	up := filepath.Join(dir, "up.git")
	git := func(dir string, args ...string) string {
		t.Helper()
		c := exec.Command("git", args...)
		c.Dir = dir
		c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x",
			"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git(dir, "init", "-q", "--bare", "--initial-branch=main", up)
	seed := filepath.Join(dir, "seed")
	git(dir, "init", "-q", "--initial-branch=main", seed)
	os.WriteFile(filepath.Join(seed, "README"), []byte("hello\n"), 0o644)
	git(seed, "add", ".")
	git(seed, "commit", "-q", "-m", "init")
	git(seed, "push", "-q", up, "main")
	mainBefore := git(seed, "rev-parse", "HEAD")
	if _, err := w.admin.AddRepo(ctx, &writ.RepoAddRequest{Name: "acme/api", Upstream: up}); err != nil {
		t.Fatal(err)
	}

	// The signed trigger the launcher starts the run with.
	pem, err := os.ReadFile(w.dev.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := trigger.LoadPrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	tr := trigger.Template(time.Now(), w.dev.Human)
	tr.Scope.Tools = []string{"read", "edit", "shell:git", "shell:test"}
	tr.Scope.Repos[0].Paths = []string{"**"}
	payload, _ := json.Marshal(tr)
	signed, err := trigger.SignDSSE(payload, writ.TriggerPayloadType, key)
	if err != nil {
		t.Fatal(err)
	}
	trigFile := filepath.Join(dir, "t.signed.json")
	os.WriteFile(trigFile, signed, 0o600)

	push := "git clone -q \"$WRIT_URL/git/acme/api.git\" repo && cd repo && " +
		"git -c user.name=agent -c user.email=agent@x commit -q --allow-empty -m 'straight to main' && " +
		"git push origin HEAD:main 2>&1; echo \"push exit $?\""
	api := claudeNewAPI(t,
		claudeTurn{ID: claudeID("toolu_"), Command: push},
		claudeTurn{Text: "done"},
	)
	ws := t.TempDir()
	// CMD's environment is built by the launcher from scratch; what Claude
	// Code needs to reach the stand-in is given on its own command line.
	base := api.srv.URL
	if sandbox {
		// A name the launcher's NO_PROXY (writ's own host) does not cover:
		// the calls go through writ's egress proxy, which resolves it.
		base = strings.Replace(base, "127.0.0.1", "model.test", 1)
	}
	script := fmt.Sprintf("exec env ANTHROPIC_BASE_URL=%s ANTHROPIC_API_KEY=test-key CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 "+
		"DISABLE_AUTOUPDATER=1 ENABLE_TOOL_SEARCH=false CLAUDE_CODE_MAX_RETRIES=0 IS_SANDBOX=1 "+
		"'%s' -p 'do the task' --output-format json --permission-mode bypassPermissions", base, claude)
	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	args := []string{"run", "--sandbox=" + fmt.Sprint(sandbox), "--trigger", trigFile, "--workspace", ws}
	if sandbox {
		args = append(args, "--ro", filepath.Dir(claude))
	}
	args = append(args, "--", "sh", "-c", script)
	cmd := exec.CommandContext(cctx, writBin, args...)
	cmd.Env = claudeEnv("WRIT_URL=" + w.url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("writ run -- claude: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	var res claudeResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("claude output is not JSON: %v\n%s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	// No hooks: Claude Code itself let the command run.
	if len(res.PermissionDenials) != 0 {
		t.Errorf("Claude Code denied something itself (%v): the test wants writ's gateway, not hooks, to refuse", res.PermissionDenials)
	}
	results := api.results()
	var out string
	for _, r := range results {
		out += r.Text
	}
	if !strings.Contains(out, "push exit") {
		t.Fatalf("the Bash tool did not run the push; tool results: %q", out)
	}
	if !strings.Contains(out, "remote: writ:") || !strings.Contains(out, "[remote rejected]") || strings.Contains(out, "push exit 0") {
		t.Errorf("the push to main was not refused with writ's reason in git's output:\n%s", out)
	}
	if got := git(dir, "ls-remote", up, "refs/heads/main"); !strings.HasPrefix(got, mainBefore) {
		t.Errorf("the upstream's main moved: %s, want %s", got, mainBefore)
	}
	info := git(dir, "-c", "credential.helper=", "ls-remote", strings.Replace(w.url, "http://", "http://x:"+w.dev.Token+"@", 1)+"/git/acme/api.git", "refs/heads/main")
	if !strings.HasPrefix(info, mainBefore) {
		t.Errorf("writ's main moved: %s, want %s", info, mainBefore)
	}
	if sandbox {
		// Its model calls went through writ's egress proxy, each a decision.
		m := regexp.MustCompile(`run ([0-9a-z]{26}) started`).FindStringSubmatch(stderr.String())
		if m == nil {
			t.Fatalf("no run id in the launcher's output: %s", stderr.String())
		}
		tr, err := w.admin.Trace(ctx, m[1])
		if err != nil {
			t.Fatal(err)
		}
		egress := 0
		for _, te := range tr.Events {
			var ev writ.Event
			if json.Unmarshal(te.Event, &ev) == nil && ev.Type == writ.EventDecision && ev.Action == writ.ActionEgress &&
				ev.Decision == writ.VerdictAllow && strings.HasPrefix(fmt.Sprint(ev.Details["name"]), "model.test:") {
				egress++
			}
		}
		if egress == 0 {
			t.Errorf("no allowed egress decision for model.test in the run's trace: the model calls did not go through writ's proxy")
		}
		t.Logf("%d model calls went through writ's egress proxy", egress)
	}
	t.Logf("launcher: %s\ngit's output as Claude Code saw it:\n%s", stderr.String(), out)
}
