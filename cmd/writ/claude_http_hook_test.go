package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClaudeCodeHTTPHookDown records what the pinned Claude Code (2.1.332)
// does when a PreToolUse hook of type "http" cannot be reached (issue 23,
// HTTP hooks): the hook's URL is a closed port, the scripted model asks for
// one Bash call that writes a file, and the file's presence says whether
// the tool ran. Without onFailure the hook fails open (the tool runs: why
// writ ships only the process form for now); with "onFailure": "block"
// (in the settings schema of 2.1.332: "the failure counts as exit code 2")
// the call is blocked. No writ is involved: this pins the agent's behaviour
// the HTTP form would rely on.
func TestClaudeCodeHTTPHookDown(t *testing.T) {
	claude := claudeBinary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String() + "/v1/hooks/claude-code"
	l.Close()
	for _, tc := range []struct {
		name      string
		onFailure string
		wantRan   bool
	}{
		{"default", "", true},
		{"block", "block", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, home := t.TempDir(), t.TempDir()
			hook := map[string]any{"type": "http", "url": down, "timeout": 10}
			if tc.onFailure != "" {
				hook["onFailure"] = tc.onFailure
			}
			settings, _ := json.Marshal(map[string]any{"hooks": map[string]any{
				"PreToolUse": []any{map[string]any{"matcher": "*", "hooks": []any{hook}}}}})
			if err := os.MkdirAll(filepath.Join(home, ".claude"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(home, ".claude", "settings.json"), settings, 0o600); err != nil {
				t.Fatal(err)
			}
			api := claudeNewAPI(t, claudeTurn{ID: claudeID("toolu_"), Command: "echo ran > ran.txt"}, claudeTurn{Text: "done"})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, claude, "-p", "do the task", "--output-format", "json", "--permission-mode", "bypassPermissions")
			cmd.Dir = ws
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + t.TempDir(), "LANG=C.UTF-8",
				"ANTHROPIC_BASE_URL=" + api.srv.URL, "ANTHROPIC_API_KEY=test-key", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
				"DISABLE_AUTOUPDATER=1", "ENABLE_TOOL_SEARCH=false", "CLAUDE_CODE_MAX_RETRIES=0", "IS_SANDBOX=1"}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.WaitDelay = 10 * time.Second
			if err := cmd.Run(); err != nil {
				t.Fatalf("claude: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
			}
			for id, r := range api.results() {
				t.Logf("tool result %s: %+v", id, r)
				if !tc.wantRan && (!r.IsError || !strings.Contains(r.Text, `blocking because onFailure is "block"`)) {
					t.Errorf("the blocked call's result %+v does not say the hook failure blocked it", r)
				}
			}
			_, statErr := os.Stat(filepath.Join(ws, "ran.txt"))
			if ran := statErr == nil; ran != tc.wantRan {
				t.Errorf("onFailure %q with the hook's URL down: the Bash call ran = %v, want %v\n%s", tc.onFailure, ran, tc.wantRan, stdout.String())
			}
			if len(api.results()) == 0 {
				t.Errorf("the model got no tool result: the scripted Bash call was never attempted\n%s", stdout.String())
			}
		})
	}
}
