package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// realCLI returns the agent CLI in environment variable name (set by
// scripts/test.sh, which installs the pinned versions), skipping the test
// when it is unset unless WRIT_TEST_REQUIRE_ALL=1.
func realCLI(t *testing.T, name string) string {
	t.Helper()
	p := os.Getenv(name)
	if p == "" {
		if os.Getenv("WRIT_TEST_REQUIRE_ALL") == "1" {
			t.Fatalf("%s is not set and WRIT_TEST_REQUIRE_ALL=1: scripts/test.sh installs the pinned Codex and Copilot CLIs", name)
		}
		t.Skipf("%s is not set: scripts/test.sh installs the pinned Codex and Copilot CLIs", name)
	}
	return p
}

// installHook runs `writ hook install ARGS…` in-process.
func installHook(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	if code := runMain(context.Background(), e, append([]string{"hook", "install"}, args...)); code != 0 {
		t.Fatalf("writ hook install %v: exit %d\n%s%s", args, code, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// codexLoads starts the real `codex exec` with hooks.json in codexHome and
// a model provider at a closed port, reads its output until it first
// tries the model (the hooks are loaded by then), stops it and returns
// what it printed.
func codexLoads(t *testing.T, codex, codexHome string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, codex, "exec", "--skip-git-repo-check", "-C", t.TempDir(),
		"-c", "model_provider=stand-in", "-c", `model_providers.stand-in={name="stand-in",base_url="http://`+closed+`/v1",wire_api="responses"}`, "say hi")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "CODEX_HOME=" + codexHome, "OPENAI_API_KEY=unused", "NO_COLOR=1"}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); pw.Close() }()
	var out strings.Builder
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "Reconnecting") || strings.Contains(sc.Text(), "stream disconnected") {
			break
		}
	}
	_ = cmd.Process.Kill()
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if !strings.Contains(out.String(), "Codex") {
		t.Fatalf("codex exec printed no banner:\n%s", out.String())
	}
	return out.String()
}

// TestHookInstallRealCLIs: `writ hook install` reads the versions of the
// real pinned CLIs, and the real Codex 0.171.0 loads the hooks.json it
// writes — while it refuses the shape writ's docs gave before, which
// shows the check would see a file Codex cannot read.
func TestHookInstallRealCLIs(t *testing.T) {
	codex := realCLI(t, "WRIT_TEST_CODEX")
	copilot := realCLI(t, "WRIT_TEST_COPILOT")

	home := t.TempDir()
	out := installHook(t, "codex", "--cli", codex, "--file", filepath.Join(home, "hooks.json"), "--command", "writ hook codex")
	if !strings.Contains(out, "for codex 0.171.0") || !strings.Contains(out, "Trust all and continue") {
		t.Errorf("writ hook install codex:\n%s", out)
	}
	if got := codexLoads(t, codex, home); strings.Contains(got, "failed to parse hooks config") {
		t.Errorf("codex refuses the hooks.json writ wrote:\n%s", got)
	}
	old := t.TempDir()
	if err := os.WriteFile(filepath.Join(old, "hooks.json"), []byte(`{"PreToolUse": [{"hooks": [{"type": "command", "command": "writ hook codex"}]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := codexLoads(t, codex, old); !strings.Contains(got, "unknown field `PreToolUse`, expected `description` or `hooks`") {
		t.Errorf("codex with the old hooks.json shape did not say it refuses it:\n%s", got)
	}

	out = installHook(t, "copilot", "--cli", copilot, "--dir", t.TempDir(), "--command", "writ hook copilot")
	if !strings.Contains(out, "for copilot 1.0.102") || !strings.Contains(out, "copilot config trustedFolders") {
		t.Errorf("writ hook install copilot:\n%s", out)
	}
}
