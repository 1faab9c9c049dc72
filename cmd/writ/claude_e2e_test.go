package main

// End-to-end tests of `writ hook claude-code` under the real Claude Code
// (pinned in scripts/test.sh, path in WRIT_TEST_CLAUDE), with no model: a
// local stand-in for the Anthropic Messages API scripts the agent's turns,
// Claude Code runs its real agent loop and its real hooks, and the hooks
// ask a real writ server (in this process) over HTTP.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/trigger"
)

// claudeBinary returns the pinned Claude Code, skipping the test when it
// is not installed unless WRIT_TEST_REQUIRE_ALL=1.
func claudeBinary(t testing.TB) string {
	t.Helper()
	p := os.Getenv("WRIT_TEST_CLAUDE")
	if p == "" {
		if os.Getenv("WRIT_TEST_REQUIRE_ALL") == "1" {
			t.Fatal("WRIT_TEST_CLAUDE is not set and WRIT_TEST_REQUIRE_ALL=1: install Claude Code with scripts/test.sh")
		}
		t.Skip("WRIT_TEST_CLAUDE is not set: scripts/test.sh installs the pinned Claude Code")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("WRIT_TEST_CLAUDE: %v", err)
	}
	return p
}

// claudeBuildWrit builds the writ binary into a temporary directory, or
// returns WRIT_TEST_WRIT_BIN when set (a binary built beforehand, say for
// a profiler that needs it to outlive the test).
func claudeBuildWrit(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("WRIT_TEST_WRIT_BIN"); p != "" {
		return p
	}
	bin := filepath.Join(t.TempDir(), "writ")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// claudeEnv is this process's environment without writ's own variables
// (a developer's WRIT_URL would redirect the hook), plus extra.
func claudeEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WRIT_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// claudeWrit is a writ dev server running in this process.
type claudeWrit struct {
	url   string
	admin *client.Client // the dev human's admin token
	dev   *server.DevEnv
	stop  func()
	logMu sync.Mutex
	log   bytes.Buffer
}

func (w *claudeWrit) Write(p []byte) (int, error) {
	w.logMu.Lock()
	defer w.logMu.Unlock()
	return w.log.Write(p)
}

// claudeStartWrit starts `writ serve --dev` in process, its refactor
// profile widened by tools and its budgets lifted (the benchmark makes
// thousands of calls).
func claudeStartWrit(t testing.TB, tools ...string) *claudeWrit {
	t.Helper()
	return claudeStartWritWith(t, nil, tools...)
}

// claudeStartWritWith is claudeStartWrit with the config changed by mod.
func claudeStartWritWith(t testing.TB, mod func(*server.Config), tools ...string) *claudeWrit {
	t.Helper()
	cfg, dev, err := server.PrepareDev(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Policy.Timeout = 10 * time.Second // generous: this test is not about timeouts
	if mod != nil {
		mod(&cfg)
	}
	cfg.Durability = "normal"
	for _, p := range cfg.Profiles {
		if p.Name == "refactor" {
			p.Tools = append(p.Tools, tools...)
			p.Budgets = writ.Budgets{}
		}
	}
	w := &claudeWrit{dev: dev}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, server.Options{Logger: slog.New(slog.NewTextHandler(w, nil))})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	url, err := srv.Listen()
	if err != nil {
		cancel()
		srv.Close()
		t.Fatal(err)
	}
	if err := srv.FinishDev(ctx, dev, url); err != nil {
		cancel()
		srv.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	w.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("writ server: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		w.stop()
		if t.Failed() {
			w.logMu.Lock()
			t.Logf("writ server log:\n%s", w.log.String())
			w.logMu.Unlock()
		}
	})
	w.url, w.admin = url, client.New(url, dev.Token)
	return w
}

// startRun starts a run of refactor-bot whose scope names tools, and
// writes its credentials as `writ run` leaves them beside an agent: run,
// url and an unbound token, no DPoP key. It returns the run id and the
// directory.
func (w *claudeWrit) startRun(t testing.TB, tools ...string) (string, string) {
	t.Helper()
	pem, err := os.ReadFile(w.dev.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := trigger.LoadPrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	tr := trigger.Template(time.Now(), w.dev.Human)
	tr.Scope.Tools = tools
	payload, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := trigger.SignDSSE(payload, writ.TriggerPayloadType, key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := client.New(w.url, "").StartRun(ctx, signed, nil)
	if err != nil {
		t.Fatalf("start run: %v", err)
	}
	dir := t.TempDir()
	claudeWriteRunDir(t, dir, string(run.ID), w.url, run.Token)
	return string(run.ID), dir
}

func claudeWriteRunDir(t testing.TB, dir, run, url, tok string) {
	t.Helper()
	for name, v := range map[string]string{"run": run, "url": url, "token": tok} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// claudeEvent is a decision or decision.outcome event of a run's trace.
type claudeEvent struct {
	Type     string
	Subject  string
	Decision string
	Via      string
	CallRef  string
	Name     string
	Details  map[string]any
}

// events returns the run's decision events, through GET /v1/trace/{run}
// with the dev human's admin token.
func (w *claudeWrit) events(t testing.TB, run string) []claudeEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := w.admin.Trace(ctx, run)
	if err != nil {
		t.Fatalf("trace %s: %v", run, err)
	}
	var out []claudeEvent
	for _, te := range tr.Events {
		var ev writ.Event
		if err := json.Unmarshal(te.Event, &ev); err != nil {
			t.Fatalf("trace event %s: %v", te.Event, err)
		}
		if ev.Type != writ.EventDecision && ev.Type != writ.EventDecisionOutcome {
			continue
		}
		str := func(k string) string { s, _ := ev.Details[k].(string); return s }
		out = append(out, claudeEvent{Type: ev.Type, Subject: ev.Subject, Decision: ev.Decision, Via: str("via"),
			CallRef: str("callRef"), Name: str("name"), Details: ev.Details})
	}
	return out
}

// claudeTurn is one scripted answer of the stand-in model: a Bash
// tool_use when Command is set, else a final text.
type claudeTurn struct {
	ID      string // toolu_… of the tool_use
	Command string
	Text    string
}

// claudeRequest is one request Claude Code sent to the stand-in API.
type claudeRequest struct {
	Method, URL string
	Header      http.Header
	Body        []byte
	// Of a Messages request:
	Model    string
	Tools    []string
	Stream   bool
	Results  []claudeToolResult // every tool_result block in the messages
	Answered string             // what the stand-in answered
}

// claudeToolResult is a tool_result block as Claude Code sends it back.
type claudeToolResult struct {
	ID      string
	IsError bool
	Text    string
}

// claudeAPI is a local stand-in for the Anthropic Messages API. The main
// agent loop (a request that offers the Bash tool) gets script[n], n being
// the number of tool results in its messages; so a retried or repeated
// request gets the same answer, and Claude Code's side requests (titles,
// quota checks, token counts: no Bash tool) get a short text.
type claudeAPI struct {
	script []claudeTurn
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []*claudeRequest
}

func claudeNewAPI(t testing.TB, script ...claudeTurn) *claudeAPI {
	t.Helper()
	a := &claudeAPI{script: script}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(func() {
		a.srv.Close()
		if t.Failed() {
			a.dump(t)
		}
	})
	return a
}

// claudeID returns a fresh Anthropic-style id with prefix.
func claudeID(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + "01" + hex.EncodeToString(b)
}

func (a *claudeAPI) requests() []*claudeRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.reqs)
}

// results returns the tool results Claude Code sent back, by tool_use id:
// the last request of the main loop holds them all.
func (a *claudeAPI) results() map[string]claudeToolResult {
	out := map[string]claudeToolResult{}
	for _, r := range a.requests() {
		for _, tr := range r.Results {
			out[tr.ID] = tr
		}
	}
	return out
}

func (a *claudeAPI) dump(t testing.TB) {
	for i, r := range a.requests() {
		t.Logf("API request %d: %s %s model=%q stream=%v tools=%v answered=%s\n%s", i, r.Method, r.URL, r.Model, r.Stream,
			r.Tools, r.Answered, claudeSummary(r.Body))
	}
}

// claudeSummary shortens a Messages request for the log: the system
// prompt, tool schemas and long texts are cut, tool_use and tool_result
// blocks kept whole.
func claudeSummary(body []byte) string {
	var m struct {
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if json.Unmarshal(body, &m) != nil || len(m.Messages) == 0 {
		if len(body) > 2000 {
			return string(body[:2000]) + "…"
		}
		return string(body)
	}
	short := func(s string) string {
		if len(s) > 160 {
			return s[:160] + "…"
		}
		return s
	}
	var b strings.Builder
	for _, msg := range m.Messages {
		var blocks []map[string]any
		if json.Unmarshal(msg.Content, &blocks) != nil {
			var s string
			json.Unmarshal(msg.Content, &s)
			fmt.Fprintf(&b, "  %s: %q\n", msg.Role, short(s))
			continue
		}
		for _, bl := range blocks {
			if bl["type"] == "text" {
				fmt.Fprintf(&b, "  %s text: %q\n", msg.Role, short(fmt.Sprint(bl["text"])))
				continue
			}
			j, _ := json.Marshal(bl)
			fmt.Fprintf(&b, "  %s %v: %s\n", msg.Role, bl["type"], j)
		}
	}
	return b.String()
}

func (a *claudeAPI) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := &claudeRequest{Method: r.Method, URL: r.URL.String(), Header: r.Header.Clone(), Body: body}
	a.mu.Lock()
	a.reqs = append(a.reqs, req)
	a.mu.Unlock()
	answer := func(s string) {
		a.mu.Lock()
		req.Answered = s
		a.mu.Unlock()
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/messages/count_tokens":
		answer("count_tokens")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"input_tokens": 10}`)
		return
	case r.Method == http.MethodPost && r.URL.Path == "/v1/messages":
	default:
		answer("404")
		http.Error(w, `{"type":"error","error":{"type":"not_found_error","message":"not here"}}`, http.StatusNotFound)
		return
	}
	var m struct {
		Model    string `json:"model"`
		Stream   bool   `json:"stream"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		answer("400")
		http.Error(w, `{"type":"error","error":{"type":"invalid_request_error","message":"bad json"}}`, http.StatusBadRequest)
		return
	}
	var results []claudeToolResult
	for _, msg := range m.Messages {
		var blocks []struct {
			Type      string          `json:"type"`
			ToolUseID string          `json:"tool_use_id"`
			IsError   bool            `json:"is_error"`
			Content   json.RawMessage `json:"content"`
		}
		if json.Unmarshal(msg.Content, &blocks) != nil {
			continue // a plain string
		}
		for _, b := range blocks {
			if b.Type == "tool_result" {
				results = append(results, claudeToolResult{ID: b.ToolUseID, IsError: b.IsError, Text: claudeText(b.Content)})
			}
		}
	}
	var tools []string
	for _, tl := range m.Tools {
		tools = append(tools, tl.Name)
	}
	a.mu.Lock()
	req.Model, req.Stream, req.Tools, req.Results = m.Model, m.Stream, tools, results
	a.mu.Unlock()

	turn := claudeTurn{Text: "ok"}
	if slices.Contains(tools, "Bash") {
		turn = claudeTurn{Text: "done"}
		if n := len(results); n < len(a.script) {
			turn = a.script[n]
		}
	}
	if turn.Command != "" {
		answer("tool_use " + turn.ID + " " + turn.Command)
	} else {
		answer("text " + turn.Text)
	}
	claudeRespond(w, m.Model, m.Stream, turn)
}

// claudeText flattens a tool_result's content (a string or text blocks).
func claudeText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var blocks []struct {
		Text string `json:"text"`
	}
	json.Unmarshal(raw, &blocks)
	var parts []string
	for _, b := range blocks {
		parts = append(parts, b.Text)
	}
	return strings.Join(parts, "\n")
}

// claudeRespond writes turn as a Messages API answer: server-sent events
// when stream is set, else one JSON message.
func claudeRespond(w http.ResponseWriter, model string, stream bool, turn claudeTurn) {
	stop := "end_turn"
	var block map[string]any
	var delta map[string]any
	if turn.Command != "" {
		stop = "tool_use"
		input, _ := json.Marshal(map[string]string{"command": turn.Command, "description": "scripted by the test"})
		block = map[string]any{"type": "tool_use", "id": turn.ID, "name": "Bash", "input": map[string]any{}}
		delta = map[string]any{"type": "input_json_delta", "partial_json": string(input)}
	} else {
		block = map[string]any{"type": "text", "text": ""}
		delta = map[string]any{"type": "text_delta", "text": turn.Text}
	}
	usage := map[string]any{"input_tokens": 10, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
	msg := map[string]any{"id": claudeID("msg_"), "type": "message", "role": "assistant", "model": model,
		"content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": usage}
	if !stream {
		full := map[string]any{}
		for k, v := range block {
			full[k] = v
		}
		if turn.Command != "" {
			var in any
			json.Unmarshal([]byte(delta["partial_json"].(string)), &in)
			full["input"] = in
		} else {
			full["text"] = turn.Text
		}
		msg["content"], msg["stop_reason"] = []any{full}, stop
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(msg)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	fl, _ := w.(http.Flusher)
	send := func(name string, data map[string]any) {
		data["type"] = name
		b, _ := json.Marshal(data)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
		if fl != nil {
			fl.Flush()
		}
	}
	send("message_start", map[string]any{"message": msg})
	send("content_block_start", map[string]any{"index": 0, "content_block": block})
	send("content_block_delta", map[string]any{"index": 0, "delta": delta})
	send("content_block_stop", map[string]any{"index": 0})
	send("message_delta", map[string]any{"delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": 5}})
	send("message_stop", map[string]any{})
}

// claudeResult is Claude Code's `--output-format json` answer (the fields
// the test reads).
type claudeResult struct {
	Type              string `json:"type"`
	Subtype           string `json:"subtype"`
	IsError           bool   `json:"is_error"`
	Result            string `json:"result"`
	NumTurns          int    `json:"num_turns"`
	PermissionDenials []struct {
		ToolName  string          `json:"tool_name"`
		ToolUseID string          `json:"tool_use_id"`
		ToolInput json.RawMessage `json:"tool_input"`
	} `json:"permission_denials"`
}

var claudeHookTimeRE = regexp.MustCompile(`Hooks: (\w+:\w+) \[[^\n]*\] finished with status (\d+) \((\d+ms)\)`)

// claudeRun runs `claude -p` in workspace with hooks on PreToolUse and
// PostToolUse calling `writ hook claude-code`, against api, the run's
// credentials in runDir (WRIT_RUN_DIR in Claude Code's environment, which
// its hooks inherit). It returns the parsed result and the raw output.
func claudeRun(t *testing.T, claude, writBin, runDir, workspace string, api *claudeAPI, mode string) (*claudeResult, string) {
	t.Helper()
	home := t.TempDir()
	hookCmd := fmt.Sprintf("'%s' hook claude-code", writBin)
	hooks := []map[string]any{{"matcher": "*", "hooks": []map[string]any{{"type": "command", "command": hookCmd, "timeout": 60}}}}
	settings, _ := json.MarshalIndent(map[string]any{
		"hooks": map[string]any{"PreToolUse": hooks, "PostToolUse": hooks},
	}, "", "  ")
	if err := os.MkdirAll(filepath.Join(home, ".claude"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".claude", "settings.json"), settings, 0o600); err != nil {
		t.Fatal(err)
	}
	debug := filepath.Join(home, "claude-debug.log")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := []string{"-p", "do the task", "--output-format", "json", "--debug-file", debug}
	switch mode {
	case "bypassPermissions":
		args = append(args, "--permission-mode", "bypassPermissions")
	case "default":
		// No permission mode: the hook's allow is what lets Bash run.
	default:
		t.Fatalf("mode %q", mode)
	}
	cmd := exec.CommandContext(ctx, claude, args...)
	cmd.Dir = workspace
	// A clean environment: nothing of the developer's Claude Code setup
	// (keys, config dir, model overrides) leaks in.
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"TMPDIR=" + t.TempDir(),
		"LANG=C.UTF-8",
		"ANTHROPIC_BASE_URL=" + api.srv.URL,
		"ANTHROPIC_API_KEY=test-key",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
		"DISABLE_AUTOUPDATER=1",
		"ENABLE_TOOL_SEARCH=false",
		"CLAUDE_CODE_MAX_RETRIES=0",
		// bypassPermissions refuses to start as root outside a sandbox.
		"IS_SANDBOX=1",
		"WRIT_RUN_DIR=" + runDir,
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	logDebug := func() {
		if b, err := os.ReadFile(debug); err == nil {
			t.Logf("claude debug log:\n%s", b)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			logDebug()
		}
	})
	if err != nil {
		t.Fatalf("claude: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	// How long each hook took as Claude Code saw it (its debug log: "Hooks:
	// PreToolUse:Bash [COMMAND] finished with status 0 (14ms)").
	if b, err := os.ReadFile(debug); err == nil {
		for _, m := range claudeHookTimeRE.FindAllStringSubmatch(string(b), -1) {
			t.Logf("hook %s exited %s after %s as Claude Code timed it", m[1], m[2], m[3])
		}
	}
	var res claudeResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("claude output is not JSON: %v\n%s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	return &res, stdout.String()
}

// TestClaudeCodeHooks drives the real Claude Code through a scripted
// session whose Bash calls writ answers through `writ hook claude-code`.
func TestClaudeCodeHooks(t *testing.T) {
	claude := claudeBinary(t)
	writBin := claudeBuildWrit(t)

	for _, mode := range []string{"bypassPermissions", "default"} {
		t.Run("decisions/"+mode, func(t *testing.T) {
			w := claudeStartWrit(t, "shell:other")
			run, runDir := w.startRun(t, "read", "edit", "shell:test", "shell:other")
			ws := t.TempDir()
			deny := claudeTurn{ID: claudeID("toolu_"), Command: "curl -s http://127.0.0.1:9/ > net.txt"}
			allow := claudeTurn{ID: claudeID("toolu_"), Command: "echo allowed > allowed.txt"}
			api := claudeNewAPI(t, deny, allow, claudeTurn{Text: "done"})
			res, out := claudeRun(t, claude, writBin, runDir, ws, api, mode)
			t.Logf("claude output: %s", out)

			// The denied command did not run (its redirection would have
			// made net.txt); the allowed one did.
			if _, err := os.Stat(filepath.Join(ws, "net.txt")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("net.txt: %v; the denied curl ran", err)
			}
			if b, err := os.ReadFile(filepath.Join(ws, "allowed.txt")); err != nil || string(b) != "allowed\n" {
				t.Errorf("allowed.txt = %q, %v; want \"allowed\\n\"", b, err)
			}
			if res.IsError || res.Result != "done" {
				t.Errorf("claude result: is_error %v, result %q; want the final text \"done\"", res.IsError, res.Result)
			}

			// Claude Code lists the hook's denial, and tells the model
			// writ's reason in the tool result.
			var denied []string
			for _, d := range res.PermissionDenials {
				denied = append(denied, d.ToolName+" "+d.ToolUseID)
			}
			if !slices.Equal(denied, []string{"Bash " + deny.ID}) {
				t.Errorf("permission_denials = %v; want [Bash %s]", denied, deny.ID)
			}
			results := api.results()
			if r, ok := results[deny.ID]; !ok || !r.IsError || !strings.Contains(r.Text, "tool_not_in_scope") || !strings.Contains(r.Text, "shell:net") {
				t.Errorf("tool result of the denied call = %+v (sent: %v); want an error naming tool_not_in_scope and shell:net", r, ok)
			}
			if r, ok := results[allow.ID]; !ok || r.IsError {
				t.Errorf("tool result of the allowed call = %+v (sent: %v); want a success", r, ok)
			}

			// writ recorded both decisions by tool_use_id, and the
			// outcome of the allowed call from PostToolUse.
			var evs []claudeEvent
			deadline := time.Now().Add(10 * time.Second)
			for {
				evs = w.events(t, run)
				if len(evs) >= 3 || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			find := func(typ, callRef string) *claudeEvent {
				for i := range evs {
					if evs[i].Type == typ && evs[i].CallRef == callRef {
						return &evs[i]
					}
				}
				return nil
			}
			d1 := find(writ.EventDecision, deny.ID)
			if d1 == nil || d1.Decision != writ.VerdictDeny || d1.Via != "hook:claude-code" || d1.Name != "shell:net" {
				t.Errorf("decision of %s = %+v; want deny of shell:net via hook:claude-code", deny.ID, d1)
			}
			d2 := find(writ.EventDecision, allow.ID)
			if d2 == nil || d2.Decision != writ.VerdictAllow || d2.Via != "hook:claude-code" || d2.Name != "shell:other" {
				t.Errorf("decision of %s = %+v; want allow of shell:other via hook:claude-code", allow.ID, d2)
			}
			var outcomes []string
			for _, e := range evs {
				if e.Type == writ.EventDecisionOutcome {
					outcomes = append(outcomes, fmt.Sprint(e.Details["decision"]))
				}
			}
			if d2 != nil && !slices.Equal(outcomes, []string{d2.Subject}) {
				t.Errorf("decision.outcome events for decisions %v; want one, for the allowed call's %s", outcomes, d2.Subject)
			}
			if t.Failed() {
				for _, e := range evs {
					t.Logf("writ event: %+v", e)
				}
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		// A run directory whose url is a closed port.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		url := "http://" + l.Addr().String()
		l.Close()
		runDir := t.TempDir()
		claudeWriteRunDir(t, runDir, "run_01unreachable", url, "wrt_unreachable")

		in := map[string]string{
			"claude-code": `{"session_id":"s","cwd":"/tmp","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls"},"tool_use_id":"toolu_01x"}`,
			"codex":       `{"session_id":"s","cwd":"/tmp","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls"},"tool_use_id":"call_01x"}`,
			"copilot":     `{"timestamp":1,"toolName":"bash","toolArgs":"{\"command\":\"ls\"}"}`,
		}
		for _, agent := range []string{"claude-code", "codex", "copilot"} {
			cmd := exec.Command(writBin, "hook", agent)
			cmd.Env = claudeEnv("WRIT_RUN_DIR=" + runDir)
			cmd.Stdin = strings.NewReader(in[agent])
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if agent == "copilot" {
				var ans struct {
					PermissionDecision, PermissionDecisionReason string
				}
				if code != 0 || json.Unmarshal(stdout.Bytes(), &ans) != nil || ans.PermissionDecision != "deny" ||
					!strings.Contains(ans.PermissionDecisionReason, "blocked") {
					t.Errorf("writ hook copilot, writ down: exit %d, stdout %q, stderr %q; want exit 0 and a deny answer", code, stdout.String(), stderr.String())
				}
				continue
			}
			if code != 2 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "writ hook:") || !strings.Contains(stderr.String(), "blocked") {
				t.Errorf("writ hook %s, writ down: exit %d, stdout %q, stderr %q; want exit 2 and a message on stderr", agent, code, stdout.String(), stderr.String())
			}
		}

		// Under the real Claude Code, the hook's exit 2 blocks the call.
		ws := t.TempDir()
		call := claudeTurn{ID: claudeID("toolu_"), Command: "echo ran > ran.txt"}
		api := claudeNewAPI(t, call, claudeTurn{Text: "done"})
		res, out := claudeRun(t, claude, writBin, runDir, ws, api, "bypassPermissions")
		t.Logf("claude output: %s", out)
		if _, err := os.Stat(filepath.Join(ws, "ran.txt")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("ran.txt: %v; the command ran although the hook failed", err)
		}
		r, ok := api.results()[call.ID]
		if !ok || !r.IsError || !strings.Contains(r.Text, "writ hook:") || !strings.Contains(r.Text, "blocked") {
			t.Errorf("tool result = %+v (sent: %v); want an error quoting the hook's message", r, ok)
		}
		// Claude Code counts the block as a permission denial, as it does
		// a deny answer.
		if len(res.PermissionDenials) != 1 || res.PermissionDenials[0].ToolUseID != call.ID {
			t.Errorf("permission_denials = %+v; want the blocked call %s", res.PermissionDenials, call.ID)
		}
	})
}

// BenchmarkHookProcess times `writ hook claude-code` as Claude Code runs
// it — one process per tool call, the decision included — beside its
// parts and peers (p50 and p99 of single calls, one at a time, against a
// writ dev server in this process):
//
//   - pre: the PreToolUse hook of an allowed Bash call (unbound bearer
//     token, as `writ run` leaves beside an agent); pre-dpop: the same with
//     the run's DPoP key in WRIT_RUN_DIR (a proof signed per request);
//     post: the PostToolUse hook recording the outcome of a decided call;
//     pre-writ-down: the hook with nothing listening (start, input,
//     credentials, a refused connection, exit 2);
//   - decide-http-new-conn and decide-http-keepalive: the same
//     POST /v1/decide from this process (the hook's request without the
//     process); decide-curl: the same request by curl (a process and a
//     connection);
//   - writ-version: the writ binary's start (OPA, SQLite, Prometheus
//     linked in); go-hello: a Go program printing one line; true:
//     /bin/true (an exec).
//
// Run it with:
//
//	go test -run '^$' -bench HookProcess -benchtime 300x ./cmd/writ
func BenchmarkHookProcess(b *testing.B) {
	writBin := claudeBuildWrit(b)
	hello := claudeBuildHello(b)
	w := claudeStartWrit(b, "shell:other")
	tools := []string{"read", "edit", "shell:test", "shell:other"}
	// Each case starts on a run of its own: a hook decision costs more as
	// the run's decisions with a callRef accumulate (docs/performance.md,
	// "Hook adapters"), so a shared run would make every case pay for the
	// ones before it.
	type benchRun struct{ dir, token string }
	newRun := func(b *testing.B, dpop bool) benchRun {
		var dir string
		if dpop {
			dir = w.startRunDPoP(b, tools...)
		} else {
			_, dir = w.startRun(b, tools...)
		}
		tok, err := os.ReadFile(filepath.Join(dir, "token"))
		if err != nil {
			b.Fatal(err)
		}
		return benchRun{dir, strings.TrimSpace(string(tok))}
	}
	downDir := b.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	claudeWriteRunDir(b, downDir, "run_01down", "http://"+l.Addr().String(), "wrt_down")
	l.Close()

	const command = "echo allowed > allowed.txt" // shell:other, in scope
	cwd := b.TempDir()
	hookInput := func(event, id string) []byte {
		in := map[string]any{"session_id": "bench", "cwd": cwd, "hook_event_name": event, "tool_name": "Bash",
			"tool_input": map[string]string{"command": command, "description": "bench"}, "tool_use_id": id}
		if event == "PostToolUse" {
			in["tool_response"] = map[string]any{"stdout": "", "stderr": "", "interrupted": false}
			in["duration_ms"] = 3
		}
		body, _ := json.Marshal(in)
		return body
	}
	decideBody := func(id string) []byte {
		body, _ := json.Marshal(client.DecideRequest{Action: writ.Action{Kind: writ.ActionTool, Name: "shell:other",
			Args: json.RawMessage(`{"command":"echo allowed > allowed.txt","description":"bench"}`)}, Via: "hook:claude-code", CallRef: id})
		return body
	}
	// run execs one process and returns its wall time and CPU time (user
	// and system, its threads together); wantOut, when set, must be in its
	// standard output.
	run := func(b *testing.B, dir string, stdin []byte, wantCode int, wantOut string, name string, args ...string) (time.Duration, time.Duration) {
		cmd := exec.Command(name, args...)
		cmd.Env = claudeEnv("WRIT_RUN_DIR=" + dir)
		cmd.Stdin = bytes.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		t0 := time.Now()
		err := cmd.Run()
		d := time.Since(t0)
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			b.Fatal(err)
		}
		if code != wantCode || !strings.Contains(stdout.String(), wantOut) {
			b.Fatalf("%s %v: exit %d (want %d), stdout %q (want %q), stderr %q", name, args, code, wantCode, stdout.String(), wantOut, stderr.String())
		}
		return d, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	newConn := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	keepAlive := &http.Client{Timeout: 30 * time.Second}
	post := func(b *testing.B, c *http.Client, r benchRun, id string) (time.Duration, time.Duration) {
		req, _ := http.NewRequest(http.MethodPost, w.url+"/v1/decide", bytes.NewReader(decideBody(id)))
		req.Header.Set("Authorization", "Bearer "+r.token)
		req.Header.Set("Content-Type", "application/json")
		t0 := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		var dec client.Decision
		if err != nil || resp.StatusCode != http.StatusOK || json.Unmarshal(body, &dec) != nil || dec.Decision != writ.VerdictAllow {
			b.Fatalf("POST /v1/decide: %s %s %v", resp.Status, body, err)
		}
		return d, 0 // in process: no CPU time of its own
	}
	curl, curlErr := exec.LookPath("curl")
	allow := `"permissionDecision":"allow"`

	cases := []struct {
		name string
		dpop bool
		op   func(b *testing.B, r benchRun) (wall, cpu time.Duration)
	}{
		{"pre", false, func(b *testing.B, r benchRun) (time.Duration, time.Duration) {
			return run(b, r.dir, hookInput("PreToolUse", claudeID("toolu_")), 0, allow, writBin, "hook", "claude-code")
		}},
		{"pre-dpop", true, func(b *testing.B, r benchRun) (time.Duration, time.Duration) {
			return run(b, r.dir, hookInput("PreToolUse", claudeID("toolu_")), 0, allow, writBin, "hook", "claude-code")
		}},
		{"post", false, func(b *testing.B, r benchRun) (time.Duration, time.Duration) {
			id := claudeID("toolu_")
			b.StopTimer()
			post(b, keepAlive, r, id) // decided first, untimed
			b.StartTimer()
			return run(b, r.dir, hookInput("PostToolUse", id), 0, "", writBin, "hook", "claude-code")
		}},
		{"pre-writ-down", false, func(b *testing.B, r benchRun) (time.Duration, time.Duration) {
			return run(b, downDir, hookInput("PreToolUse", claudeID("toolu_")), 2, "", writBin, "hook", "claude-code")
		}},
		{"decide-http-new-conn", false, func(b *testing.B, r benchRun) (time.Duration, time.Duration) {
			return post(b, newConn, r, claudeID("toolu_"))
		}},
		{"decide-http-keepalive", false, func(b *testing.B, r benchRun) (time.Duration, time.Duration) {
			return post(b, keepAlive, r, claudeID("toolu_"))
		}},
		{"decide-curl", false, func(b *testing.B, r benchRun) (time.Duration, time.Duration) {
			if curlErr != nil {
				b.Skip("no curl")
			}
			return run(b, r.dir, nil, 0, `"allow"`, curl, "-fsS", "-H", "Authorization: Bearer "+r.token,
				"-H", "Content-Type: application/json", "--data-binary", string(decideBody(claudeID("toolu_"))), w.url+"/v1/decide")
		}},
		{"writ-version", false, func(b *testing.B, r benchRun) (time.Duration, time.Duration) {
			return run(b, r.dir, nil, 0, "writ ", writBin, "version")
		}},
		{"go-hello", false, func(b *testing.B, r benchRun) (time.Duration, time.Duration) {
			return run(b, r.dir, nil, 0, "hello", hello)
		}},
		{"true", false, func(b *testing.B, r benchRun) (time.Duration, time.Duration) {
			return run(b, r.dir, nil, 0, "", "/bin/true")
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r := newRun(b, c.dpop)
			for range 3 { // warm up: page cache, connections, the server's caches
				c.op(b, r)
			}
			ds := make([]time.Duration, 0, b.N)
			cpus := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				d, cpu := c.op(b, r)
				ds, cpus = append(ds, d), append(cpus, cpu)
			}
			b.StopTimer()
			slices.Sort(ds)
			slices.Sort(cpus)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(ds[len(ds)/2]), "p50-ms")
			b.ReportMetric(ms(ds[len(ds)*99/100]), "p99-ms")
			if cpus[len(cpus)-1] > 0 {
				b.ReportMetric(ms(cpus[len(cpus)/2]), "cpu-p50-ms")
			}
		})
	}
}

// startRunDPoP starts a run as startRun does, but bound to a DPoP key
// kept in the run directory, as `writ run start` leaves it; it returns the
// directory.
func (w *claudeWrit) startRunDPoP(t testing.TB, tools ...string) string {
	t.Helper()
	pemKey, err := os.ReadFile(w.dev.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := trigger.LoadPrivateKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	tr := trigger.Template(time.Now(), w.dev.Human)
	tr.Scope.Tools = tools
	payload, _ := json.Marshal(tr)
	signed, err := trigger.SignDSSE(payload, writ.TriggerPayloadType, key)
	if err != nil {
		t.Fatal(err)
	}
	dk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	run, err := client.New(w.url, "").StartRun(context.Background(), signed, dk)
	if err != nil {
		t.Fatalf("start run: %v", err)
	}
	dir, err := saveRunDir(&env{getenv: os.Getenv}, t.TempDir(), w.url, run, dk)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// claudeBuildHello builds a Go program that prints one line: the floor of
// a Go process.
func claudeBuildHello(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	src := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "hello")
	cmd := exec.Command("go", "build", "-o", bin, "main.go")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GO111MODULE=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build hello: %v\n%s", err, out)
	}
	return bin
}
