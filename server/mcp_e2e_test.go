package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/mcpgw"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/token"
)

// mcpTool returns the path in environment variable name (set by
// scripts/test.sh, which installs the pinned npm packages), skipping the
// test when it is unset unless WRIT_TEST_REQUIRE_ALL=1.
func mcpTool(t testing.TB, name string) string {
	t.Helper()
	p := os.Getenv(name)
	if p == "" {
		if os.Getenv("WRIT_TEST_REQUIRE_ALL") == "1" {
			t.Fatalf("%s is not set and WRIT_TEST_REQUIRE_ALL=1: install the MCP packages with scripts/test.sh", name)
		}
		t.Skipf("%s is not set: scripts/test.sh installs the pinned MCP reference servers and inspector", name)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not installed: %v", err)
	}
	return p
}

// inspector runs the official MCP inspector CLI against url with a bearer
// token and returns its output and exit code.
func inspector(t *testing.T, bin, url, tok string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	argv := append([]string{"--cli", url, "--transport", "http", "--header", "Authorization: Bearer " + tok}, args...)
	cmd := exec.CommandContext(ctx, bin, argv...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "MCP_CATALOG_PATH="+filepath.Join(t.TempDir(), "mcp.json"))
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("inspector: %v", err)
	}
	return string(out), code
}

// rawCall opens a session at url (2025-11-25) and calls tool with args,
// as a client that ignores tools/list would; it returns the answer's body.
func rawCall(t *testing.T, url, tok, tool, args string) string {
	t.Helper()
	do := func(session, body string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := do("", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	sid := resp.Header.Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatalf("initialize: %s %s", resp.Status, body)
	}
	do(sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	_, body = do(sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"`+tool+`","arguments":`+args+`}}`)
	return body
}

// TestMCPGatewayAcceptance drives writ's MCP gateway with the official
// MCP inspector CLI over Streamable HTTP, in front of the real reference
// servers (server-everything and server-filesystem over stdio, started
// and held by writ).
func TestMCPGatewayAcceptance(t *testing.T) {
	everything := mcpTool(t, "WRIT_TEST_MCP_EVERYTHING")
	filesystem := mcpTool(t, "WRIT_TEST_MCP_FILESYSTEM")
	insp := mcpTool(t, "WRIT_TEST_MCP_INSPECTOR")

	d := prepareDev(t)
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "hello.txt"), []byte("hello from the workspace\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(outside, []byte("outside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Every message writ sends to server-everything passes through tee, so
	// the test sees exactly what reached the upstream.
	wire := filepath.Join(t.TempDir(), "everything.in")
	d.cfg.MCP.Servers = []mcpgw.Upstream{
		{Name: "everything", Command: []string{"sh", "-c", `tee -a "$0" | exec node "$1"`, wire, everything}},
		// server-filesystem may serve the workspace's parent: writ keeps
		// the run inside the workspace.
		{Name: "filesystem", Command: []string{"node", filesystem, "/"}, Workspace: ws},
		// A pin that the real echo does not match: quarantined from the start.
		{Name: "pinned", Command: []string{"node", everything}, Tools: map[string]string{"echo": "sha256:" + strings.Repeat("0", 64)}},
	}
	for _, p := range d.cfg.Profiles {
		if p.Name == "refactor" {
			p.Tools = append(p.Tools, "mcp:filesystem/*", "mcp:pinned/*")
		}
	}
	r := start(t, d.cfg, server.Options{}, d.finish(t))
	ctx := context.Background()

	key, err := token.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	signed := d.sign(t, time.Now(), func(tr *writ.Trigger) {
		tr.Scope.Tools = []string{"mcp:everything/echo", "mcp:everything/get-sum", "mcp:filesystem/read_text_file", "mcp:pinned/echo"}
	})
	run, err := client.New(r.url, "").StartRun(ctx, signed, key)
	if err != nil {
		t.Fatal(err)
	}
	rc := client.NewRun(r.url, run.Token, key)
	mint := func(server string) string {
		t.Helper()
		m, err := rc.MintToken(ctx, string(run.ID), r.url+"/mcp/"+server, false)
		if err != nil {
			t.Fatalf("mint a token for /mcp/%s: %v", server, err)
		}
		return m.Token
	}
	tokE, tokF, tokP := mint("everything"), mint("filesystem"), mint("pinned")
	urlE := r.url + "/mcp/everything"

	// tools/list: only what the run's scope names.
	out, code := inspector(t, insp, urlE, tokE, "--method", "tools/list")
	if code != 0 {
		t.Fatalf("tools/list: exit %d\n%s", code, out)
	}
	var list struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &list); err != nil {
		t.Fatalf("tools/list output: %v\n%s", err, out)
	}
	var names []string
	for _, tl := range list.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"echo", "get-sum"}) {
		t.Errorf("tools/list = %v, want [echo get-sum]", names)
	}

	// The allowed tool works.
	out, code = inspector(t, insp, urlE, tokE, "--method", "tools/call", "--tool-name", "echo", "--tool-arg", "message=hello gateway")
	if code != 0 || !strings.Contains(out, "Echo: hello gateway") {
		t.Errorf("echo: exit %d\n%s", code, out)
	}

	// The real Claude Code connects to the gateway with the run's token
	// header (`claude mcp list` really connects), and not without it.
	if out := claudeMCPList(t, urlE, tokE); !strings.Contains(out, "Connected") || strings.Contains(out, "Failed") {
		t.Errorf("claude mcp list with the run's token:\n%s", out)
	}
	if out := claudeMCPList(t, urlE, "not-a-token"); strings.Contains(out, "✓ Connected") {
		t.Errorf("claude mcp list with a bad token connected:\n%s", out)
	}

	// A tool outside the scope: the inspector will not call a tool the
	// list lacks, so a client that calls it anyway is played by hand.
	out, code = inspector(t, insp, urlE, tokE, "--method", "tools/call", "--tool-name", "get-env")
	if code != 5 || !strings.Contains(out, "not found") {
		t.Errorf("get-env through the inspector: exit %d, want 5 (not listed)\n%s", code, out)
	}
	if got := rawCall(t, urlE, tokE, "get-env", `{}`); !strings.Contains(got, "tool_not_in_scope") || !strings.Contains(got, `"decision"`) {
		t.Errorf("get-env called anyway: %s; want a JSON-RPC error naming tool_not_in_scope and the decision", got)
	}
	sent, err := os.ReadFile(wire)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sent), `"echo"`) || strings.Contains(string(sent), "get-env") {
		t.Errorf("what reached server-everything: echo sent %v, get-env sent %v; want only echo",
			strings.Contains(string(sent), `"echo"`), strings.Contains(string(sent), "get-env"))
	}

	// A token for another resource is refused (exit 3: HTTP 401).
	if out, code := inspector(t, insp, urlE, tokF, "--method", "tools/list"); code != 3 {
		t.Errorf("token for /mcp/filesystem at /mcp/everything: exit %d, want 3\n%s", code, out)
	}

	// server-filesystem: inside the workspace works, outside is refused.
	urlF := r.url + "/mcp/filesystem"
	out, code = inspector(t, insp, urlF, tokF, "--method", "tools/call", "--tool-name", "read_text_file", "--tool-arg", "path="+filepath.Join(ws, "hello.txt"))
	if code != 0 || !strings.Contains(out, "hello from the workspace") {
		t.Errorf("read_text_file in the workspace: exit %d\n%s", code, out)
	}
	out, code = inspector(t, insp, urlF, tokF, "--method", "tools/call", "--tool-name", "read_text_file", "--tool-arg", "path="+outside)
	if code == 0 || !strings.Contains(out, "path_outside_workspace") || strings.Contains(out, "outside\\n") {
		t.Errorf("read_text_file outside the workspace: exit %d, want refused with path_outside_workspace\n%s", code, out)
	}

	// The pinned server's echo does not match its pin: quarantined.
	urlP := r.url + "/mcp/pinned"
	out, code = inspector(t, insp, urlP, tokP, "--method", "tools/list")
	if code != 0 || strings.Contains(out, `"echo"`) {
		t.Errorf("tools/list of the quarantined server: exit %d, want no tools\n%s", code, out)
	}
	if got := rawCall(t, urlP, tokP, "echo", `{"message":"x"}`); !strings.Contains(got, "quarantined") {
		t.Errorf("echo on the quarantined server: %s", got)
	}
	if st, _ := r.srv.MCPStatus("pinned"); st == nil || !st.Quarantined || st.UpstreamCalls != 0 {
		t.Errorf("pinned status %+v, want quarantined with no upstream call", st)
	}
	admin := client.New(r.url, d.env.Token)
	acc, err := admin.AcceptMCP(ctx, "pinned")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(acc.Tools["echo"], "sha256:") || acc.Tools["echo"] == "sha256:"+strings.Repeat("0", 64) {
		t.Errorf("accepted digests %v, want echo's real digest", acc.Tools)
	}
	out, code = inspector(t, insp, urlP, tokP, "--method", "tools/call", "--tool-name", "echo", "--tool-arg", "message=accepted")
	if code != 0 || !strings.Contains(out, "Echo: accepted") {
		t.Errorf("echo after accept: exit %d\n%s", code, out)
	}

	// The audit log has the decisions (with argument digests) and the
	// quarantine and its acceptance.
	var types []string
	var decisions []writ.Event
	for _, e := range storeEvents(t, r.srv.Store()) {
		types = append(types, e.Type)
		if e.Type == writ.EventDecision && e.Run == run.ID {
			decisions = append(decisions, e)
		}
	}
	for _, want := range []string{mcpgw.EventQuarantined, mcpgw.EventAccepted} {
		if !slices.Contains(types, want) {
			t.Errorf("events lack %s: %v", want, types)
		}
	}
	// Allowed calls have their outcome recorded, as hooks' do.
	outcomes := 0
	for _, e := range storeEvents(t, r.srv.Store()) {
		if e.Type == writ.EventDecisionOutcome && e.Run == run.ID && e.Details["via"] == "mcp" && e.Details["failed"] == false {
			outcomes++
		}
	}
	if outcomes < 2 {
		t.Errorf("%d successful mcp decision.outcome events, want one per allowed call (echo, read_text_file, …)", outcomes)
	}
	var denied, digested int
	for _, e := range decisions {
		if e.Decision == writ.VerdictDeny {
			denied++
		}
		if s, _ := e.Details["argsDigest"].(string); strings.HasPrefix(s, "sha256:") && e.Details["via"] == "mcp" {
			digested++
		}
	}
	if denied != 2 || digested < 3 {
		t.Errorf("decision events: %d denied (want 2: get-env, the outside path), %d with an argument digest (want ≥ 3)", denied, digested)
	}

	// writ mcp proxy: the inspector speaks stdio to the relay, which
	// forwards to the gateway with the run's token, re-read from a file.
	bin := os.Getenv("WRIT_TEST_WRIT_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "writ")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/writ-dev/writ/cmd/writ").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	// The inspector starts stdio servers with a restricted environment (no
	// WRIT_*), so it reaches the gateway only through the entry `writ mcp
	// config` prints, which carries the run as flags: a run directory
	// (its url and mcp-<server>.token files), or --url with --token-file.
	runDir := t.TempDir()
	for name, content := range map[string]string{"url": r.url + "\n", "mcp-everything.token": tokE + "\n"} {
		if err := os.WriteFile(filepath.Join(runDir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tokFile := filepath.Join(t.TempDir(), "mcp-everything.token")
	if err := os.WriteFile(tokFile, []byte(tokE+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, flags := range [][]string{{"--run-dir", runDir}, {"--url", r.url, "--token-file", tokFile}} {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Minute)
		entry, err := exec.CommandContext(pctx, bin, append([]string{"mcp", "config", "--client", "inspector", "--server", "everything"}, flags...)...).Output()
		if err != nil {
			pcancel()
			t.Fatalf("writ mcp config %v: %v", flags, err)
		}
		cfgFile := filepath.Join(t.TempDir(), "mcp.json")
		if err := os.WriteFile(cfgFile, entry, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(pctx, insp, "--cli", "--config", cfgFile, "--server", "everything", "--method", "tools/call", "--tool-name", "get-sum", "--tool-arg", "a=2", "b=3")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		pout, err := cmd.CombinedOutput()
		pcancel()
		if err != nil || !strings.Contains(string(pout), "The sum of 2 and 3 is 5") {
			t.Errorf("get-sum through the entry of `writ mcp config %v`: %v\n%s\n%s", flags, err, entry, pout)
		}
	}

	// The run ends: its MCP token is refused on the next request.
	if _, err := rc.Transition(ctx, string(run.ID), "end", "done"); err != nil {
		t.Fatal(err)
	}
	if out, code := inspector(t, insp, urlE, tokE, "--method", "tools/call", "--tool-name", "echo", "--tool-arg", "message=late"); code != 3 {
		t.Errorf("ended run: exit %d, want 3 (HTTP 401)\n%s", code, out)
	}
}

// claudeMCPList registers url with the token header in a fresh Claude Code
// home (WRIT_TEST_CLAUDE, pinned by scripts/test.sh) and returns what
// `claude mcp list` prints after connecting to it.
func claudeMCPList(t *testing.T, url, tok string) string {
	t.Helper()
	bin := os.Getenv("WRIT_TEST_CLAUDE")
	if bin == "" {
		if os.Getenv("WRIT_TEST_REQUIRE_ALL") == "1" {
			t.Fatal("WRIT_TEST_CLAUDE is not set and WRIT_TEST_REQUIRE_ALL=1: install Claude Code with scripts/test.sh")
		}
		t.Log("WRIT_TEST_CLAUDE is not set: skipping the Claude Code check")
		return "Connected (not checked)"
	}
	home := t.TempDir()
	run := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = home
		cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "DISABLE_AUTOUPDATER=1"}
		out, err := cmd.CombinedOutput()
		if err != nil && ctx.Err() != nil {
			t.Fatalf("claude %v timed out:\n%s", args, out)
		}
		return string(out)
	}
	run("mcp", "add", "--transport", "http", "--scope", "user", "writ-everything", url, "--header", "Authorization: Bearer "+tok)
	return run("mcp", "list")
}
