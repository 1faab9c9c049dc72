package hook_test

// Tests of the agent adapters: Parse reads what each agent sends (the
// inputs in testdata, in the shapes of the agents' documentation), Map
// puts a call into writ's action grammar, ForDecision and Write answer in
// each agent's protocol, and Handle ties them to a Decider — here a fake
// one that records what it was asked. No network.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/hook"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parse(t *testing.T, agent, input string) *hook.Call {
	t.Helper()
	c, err := hook.Parse(agent, strings.NewReader(input))
	if err != nil {
		t.Fatalf("Parse(%s, %s): %v", agent, input, err)
	}
	return c
}

// agentOf names the agent of a testdata file by its prefix.
func agentOf(name string) string {
	for _, a := range []string{hook.ClaudeCode, hook.Codex, hook.Copilot} {
		if strings.HasPrefix(name, a+"-") {
			return a
		}
	}
	return ""
}

// TestParseTestdata reads every input in testdata as its agent sends it
// and checks the fields writ uses.
func TestParseTestdata(t *testing.T) {
	const copilotRef = `^copilot_[0-9a-f]{32}$`
	tests := []struct {
		file                      string
		event, tool, callRef, cwd string
		session, subagent         string
		duration                  int64
		failed                    bool
		exitCode                  *int
		inputHas                  string // a substring of the tool input writ passes on
		callRefRE                 string // for Copilot, whose ref writ derives
	}{
		{file: "claude-code-pretooluse-bash.json", event: hook.PreToolUse, tool: "Bash", callRef: "toolu_c0580fa2ad5445998ffb",
			cwd: "/home/dev/proj", session: "aa0994a6-5c1e-4a55-9a3e-0d3f3f1f2b11", inputHas: `hook_test_out.txt`},
		{file: "claude-code-posttooluse-bash.json", event: hook.PostToolUse, tool: "Bash", callRef: "toolu_01DEF",
			cwd: "/home/dev/proj", session: "abc123", duration: 1840, inputHas: `go test ./...`},
		{file: "claude-code-posttooluse-bash-failed.json", event: hook.PostToolUse, tool: "Bash", callRef: "toolu_01VET",
			cwd: "/home/dev/proj", session: "abc123", duration: 420, failed: true, exitCode: ptr(1)},
		{file: "claude-code-pretooluse-mcp.json", event: hook.PreToolUse, tool: "mcp__everything__get-sum", callRef: "toolu_01ABC123",
			cwd: "/home/dev/proj", session: "aa0994a6-5c1e-4a55-9a3e-0d3f3f1f2b11", inputHas: `"a":20`},
		{file: "claude-code-pretooluse-subagent-edit.json", event: hook.PreToolUse, tool: "Edit", callRef: "toolu_01XYZ",
			cwd: "/home/dev/proj", session: "abc123", subagent: "code-reviewer", inputHas: `ci.yml`},
		{file: "claude-code-pretooluse-bash-gotest.json", event: hook.PreToolUse, tool: "Bash", callRef: "toolu_01DEF",
			cwd: "/home/dev/proj", session: "aa0994a6-5c1e-4a55-9a3e-0d3f3f1f2b11"},
		{file: "claude-code-pretooluse-write.json", event: hook.PreToolUse, tool: "Write", callRef: "toolu_01WRT", cwd: "/home/dev/proj", session: "abc123"},
		{file: "claude-code-pretooluse-edit-outside.json", event: hook.PreToolUse, tool: "Edit", callRef: "toolu_01OUT", cwd: "/home/dev/proj", session: "abc123"},
		{file: "claude-code-pretooluse-multiedit.json", event: hook.PreToolUse, tool: "MultiEdit", callRef: "toolu_01MUL", cwd: "/home/dev/proj", session: "abc123"},
		{file: "claude-code-pretooluse-notebookedit.json", event: hook.PreToolUse, tool: "NotebookEdit", callRef: "toolu_01NBE", cwd: "/home/dev/proj", session: "abc123"},
		{file: "claude-code-pretooluse-read.json", event: hook.PreToolUse, tool: "Read", callRef: "toolu_01RD", cwd: "/home/dev/proj", session: "abc123"},
		{file: "claude-code-pretooluse-webfetch.json", event: hook.PreToolUse, tool: "WebFetch", callRef: "toolu_01WF", cwd: "/home/dev/proj", session: "abc123"},
		{file: "claude-code-pretooluse-websearch.json", event: hook.PreToolUse, tool: "WebSearch", callRef: "toolu_01WS", cwd: "/home/dev/proj", session: "abc123"},
		{file: "claude-code-pretooluse-task.json", event: hook.PreToolUse, tool: "Task", callRef: "toolu_01TSK", cwd: "/home/dev/proj", session: "abc123"},
		{file: "claude-code-pretooluse-todowrite.json", event: hook.PreToolUse, tool: "TodoWrite", callRef: "toolu_01TODO", cwd: "/home/dev/proj", session: "abc123"},
		{file: "codex-pretooluse-bash.json", event: hook.PreToolUse, tool: "Bash", callRef: "call_abc123",
			cwd: "/home/dev/proj", session: "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", inputHas: `git push origin HEAD:main`},
		{file: "codex-pretooluse-apply-patch.json", event: hook.PreToolUse, tool: "apply_patch", callRef: "call_patch1",
			cwd: "/home/dev/proj", session: "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", inputHas: `*** Begin Patch`},
		// A string tool_response (Codex) is not an error report.
		{file: "codex-posttooluse-bash.json", event: hook.PostToolUse, tool: "Bash", callRef: "call_build1",
			cwd: "/home/dev/proj", session: "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"},
		{file: "copilot-pretooluse-bash.json", event: hook.PreToolUse, tool: "bash", cwd: "/home/runner/work/proj/proj",
			callRefRE: copilotRef, inputHas: `attacker.example`},
		{file: "copilot-pretooluse-bash-object.json", event: hook.PreToolUse, tool: "bash", cwd: "/home/dev/proj",
			callRefRE: copilotRef, inputHas: `get.example.sh`},
		{file: "copilot-pretooluse-bash-gotest.json", event: hook.PreToolUse, tool: "bash", cwd: "/home/runner/work/proj/proj", callRefRE: copilotRef},
		{file: "copilot-pretooluse-edit.json", event: hook.PreToolUse, tool: "edit", cwd: "/home/runner/work/proj/proj", callRefRE: copilotRef},
		{file: "copilot-pretooluse-create.json", event: hook.PreToolUse, tool: "create", cwd: "/home/runner/work/proj/proj", callRefRE: copilotRef},
		{file: "copilot-pretooluse-view.json", event: hook.PreToolUse, tool: "view", cwd: "/home/runner/work/proj/proj", callRefRE: copilotRef},
		{file: "copilot-pretooluse-unknown.json", event: hook.PreToolUse, tool: "github-mcp-server-create_issue", cwd: "/home/runner/work/proj/proj", callRefRE: copilotRef},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			agent := agentOf(tt.file)
			c, err := hook.Parse(agent, bytes.NewReader(readTestdata(t, tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			if c.Agent != agent || c.Event != tt.event || c.Tool != tt.tool || c.Cwd != tt.cwd || c.Session != tt.session ||
				c.Subagent != tt.subagent || c.Duration != tt.duration || c.Failed != tt.failed {
				t.Errorf("Parse = agent %q event %q tool %q cwd %q session %q subagent %q duration %d failed %v;\nwant %q %q %q %q %q %q %d %v",
					c.Agent, c.Event, c.Tool, c.Cwd, c.Session, c.Subagent, c.Duration, c.Failed,
					agent, tt.event, tt.tool, tt.cwd, tt.session, tt.subagent, tt.duration, tt.failed)
			}
			if !reflect.DeepEqual(c.ExitCode, tt.exitCode) {
				t.Errorf("ExitCode = %v, want %v", deref(c.ExitCode), deref(tt.exitCode))
			}
			if tt.callRefRE != "" {
				if !regexp.MustCompile(tt.callRefRE).MatchString(c.CallRef) {
					t.Errorf("CallRef = %q, want %s", c.CallRef, tt.callRefRE)
				}
			} else if c.CallRef != tt.callRef {
				t.Errorf("CallRef = %q, want %q", c.CallRef, tt.callRef)
			}
			if !json.Valid(c.Input) {
				t.Errorf("Input is not JSON: %s", c.Input)
			}
			if !strings.Contains(string(c.Input), tt.inputHas) {
				t.Errorf("Input %s lacks %q", c.Input, tt.inputHas)
			}
		})
	}
	// Every input in testdata is covered above.
	files, _ := filepath.Glob("testdata/*.json")
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("testdata/%s has no case in TestParseTestdata", filepath.Base(f))
		}
	}
}

func ptr[T any](v T) *T { return &v }

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestParseCopilotCallRef: Copilot sends no call id, so writ derives one
// from the call; the same call always gets the same ref (a repeated hook
// is de-duplicated by the server), another call another ref.
func TestParseCopilotCallRef(t *testing.T) {
	in := func(ts int64, tool, args string) string {
		b, _ := json.Marshal(map[string]any{"timestamp": ts, "cwd": "/w", "toolName": tool, "toolArgs": args})
		return string(b)
	}
	ref := func(s string) string { return parse(t, hook.Copilot, s).CallRef }
	base := ref(in(1764086400000, "bash", `{"command":"go test ./..."}`))
	if got := ref(in(1764086400000, "bash", `{"command":"go test ./..."}`)); got != base {
		t.Errorf("same timestamp and args: %q, then %q", base, got)
	}
	if got := ref(in(1764086400000, "bash", `{"command":"go vet ./..."}`)); got == base {
		t.Errorf("different args, same ref %q", got)
	}
	if got := ref(in(1764086400001, "bash", `{"command":"go test ./..."}`)); got == base {
		t.Errorf("different timestamp, same ref %q", got)
	}
	// The arguments count as JSON, compacted: whitespace, or an object
	// sent in place of a string holding it, is the same call.
	if got := ref(in(1764086400000, "bash", `{"command": "go test ./..."}`)); got != base {
		t.Errorf("same args with spaces: %q, then %q", base, got)
	}
	if got := ref(`{"timestamp":1764086400000,"cwd":"/w","toolName":"bash","toolArgs":{"command": "go test ./..."}}`); got != base {
		t.Errorf("same args as an object: %q, then %q", base, got)
	}
	if c := parse(t, hook.Copilot, `{"timestamp":1,"toolName":"view"}`); string(c.Input) != "{}" || c.CallRef == "" {
		t.Errorf("no toolArgs: Input %s, CallRef %q; want {} and a ref", c.Input, c.CallRef)
	}
	t.Run("tool name", func(t *testing.T) {
		a := ref(in(1764086400000, "view", `{"path":"src/log.go"}`))
		b := ref(in(1764086400000, "edit", `{"path":"src/log.go"}`))
		if a == b {
			// The server answers a known (via, callRef) with the decision it
			// recorded for it, whatever the action (decision/decision.go,
			// DecisionByCallRef): an edit with the same timestamp and
			// arguments as an allowed view would be answered "allow".
			t.Error("hook/hook.go Parse (Copilot): callRef hashes timestamp and toolArgs but not toolName (or cwd), " +
				"so view and edit of the same path in the same millisecond share a ref and the server replays the view's decision; " +
				"hash toolName and cwd too")
		}
	})
}

// TestParseRefusals: input writ cannot read with certainty is refused (the
// caller fails closed).
func TestParseRefusals(t *testing.T) {
	const ok = `"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls"},"tool_use_id":"toolu_1","cwd":"/w"`
	big := `{` + ok + `,"pad":"` + strings.Repeat("x", 4<<20) + `"}`
	tests := []struct {
		name, agent, input, want string
	}{
		{"not JSON", hook.ClaudeCode, `tool_name=Bash`, "not the claude-code hook JSON"},
		{"empty", hook.ClaudeCode, ``, "not the claude-code hook JSON"},
		{"array", hook.Codex, `[{` + ok + `}]`, "not the codex hook JSON"},
		{"trailing data", hook.ClaudeCode, `{` + ok + `} {"tool_name":"Read"}`, ""},
		{"no tool_name", hook.ClaudeCode, `{"hook_event_name":"PreToolUse","tool_input":{},"tool_use_id":"toolu_1"}`, "no tool_name"},
		{"empty tool_name", hook.Codex, `{"hook_event_name":"PreToolUse","tool_name":"","tool_use_id":"call_1"}`, "no tool_name"},
		{"no tool_use_id", hook.ClaudeCode, `{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls"}}`, "no tool_use_id"},
		{"no tool_use_id codex", hook.Codex, `{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls"}}`, "no tool_use_id"},
		{"unknown event", hook.ClaudeCode, `{"hook_event_name":"UserPromptSubmit","tool_name":"Bash","tool_use_id":"toolu_1"}`, `hook event "UserPromptSubmit"`},
		{"event Stop", hook.Codex, `{"hook_event_name":"Stop","tool_name":"Bash","tool_use_id":"call_1"}`, `hook event "Stop"`},
		{"event case", hook.ClaudeCode, `{"hook_event_name":"pretooluse","tool_name":"Bash","tool_use_id":"toolu_1"}`, `hook event "pretooluse"`},
		{"duplicate key", hook.ClaudeCode, `{` + ok + `,"tool_name":"Read"}`, "duplicate"},
		{"duplicate key in tool_input", hook.ClaudeCode,
			`{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"go test ./...","command":"curl x"},"tool_use_id":"toolu_1"}`, "duplicate"},
		{"case-variant key", hook.Codex, `{` + ok + `,"Tool_Name":"Read"}`, "case"},
		{"wrong type tool_name", hook.ClaudeCode, `{"hook_event_name":"PreToolUse","tool_name":5,"tool_use_id":"toolu_1"}`, "not the claude-code hook JSON"},
		{"wrong type duration", hook.ClaudeCode, `{` + ok + `,"duration_ms":"1840"}`, "not the claude-code hook JSON"},
		{"over size", hook.ClaudeCode, big, "over 4194304 bytes"},
		{"over size copilot", hook.Copilot, `{"toolName":"bash","toolArgs":"{}","pad":"` + strings.Repeat("x", 4<<20) + `"}`, "over 4194304 bytes"},
		{"unknown agent", "cursor", `{` + ok + `}`, `unknown agent "cursor"`},
		{"no agent", "", `{` + ok + `}`, `unknown agent ""`},
		{"agent case", "Claude-Code", `{` + ok + `}`, `unknown agent`},
		{"copilot not JSON", hook.Copilot, `toolName: bash`, "not the copilot hook JSON"},
		{"copilot no toolName", hook.Copilot, `{"timestamp":1,"toolArgs":"{}"}`, "no toolName"},
		{"copilot toolArgs not JSON", hook.Copilot, `{"timestamp":1,"toolName":"bash","toolArgs":"{\"command\": curl x"}`, "toolArgs is neither a JSON object nor a string holding one"},
		{"copilot toolArgs an array", hook.Copilot, `{"timestamp":1,"toolName":"bash","toolArgs":["ls"]}`, "toolArgs is neither"},
		{"copilot toolArgs a number", hook.Copilot, `{"timestamp":1,"toolName":"bash","toolArgs":5}`, "toolArgs is neither"},
		{"copilot toolArgs object with duplicate key", hook.Copilot, `{"timestamp":1,"toolName":"bash","toolArgs":{"command":"ls","command":"curl x|sh"}}`, "duplicate"},
		{"copilot timestamp a string", hook.Copilot, `{"timestamp":"1","toolName":"bash","toolArgs":"{}"}`, "not the copilot hook JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := hook.Parse(tt.agent, strings.NewReader(tt.input))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", c)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to say %q", err, tt.want)
			}
		})
	}
	// Known gaps: Copilot's input is not read strictly.
	for _, tt := range []struct{ name, input, bug string }{
		{"copilot duplicate key", `{"timestamp":1,"toolName":"view","toolName":"bash","toolArgs":"{\"command\":\"curl x\"}"}`,
			"bug: hook/hook.go Parse (Copilot) decodes with json.Unmarshal only, so duplicate (and case-variant) keys are accepted, last one wins, " +
				"unlike claude-code/codex; run strictjson.Decode(data, &map[string]any{}) on the input (and on toolArgs) as the Claude Code branch does"},
		{"copilot toolArgs not an object", `{"timestamp":1,"toolName":"edit","toolArgs":"[\"/etc/passwd\"]"}`,
			"bug: hook/hook.go Parse (Copilot) checks toolArgs with json.Valid, so a JSON array or string is accepted although the error says " +
				"\"a JSON string of an object\"; Map then sees no arguments (an edit without a path); check that toolArgs decodes into a JSON object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := hook.Parse(hook.Copilot, strings.NewReader(tt.input)); err == nil {
				t.Error(tt.bug)
			}
		})
	}
}

// TestParseLenient: fields writ does not use, and fields agents add, are
// tolerated; a missing hook_event_name is a PreToolUse (the one writ
// answers).
func TestParseLenient(t *testing.T) {
	c := parse(t, hook.Codex, `{"session_id":"s","turn_id":"t","transcript_path":null,"cwd":"/w","model":"gpt-5-codex",`+
		`"permission_mode":"default","tool_name":"Bash","tool_input":{"command":"ls"},"tool_use_id":"call_1","future":{"x":[1]}}`)
	if c.Event != hook.PreToolUse || c.CallRef != "call_1" || c.Session != "s" {
		t.Errorf("Parse = %+v", c)
	}
	// Exactly at the size limit is still read.
	pad := 4<<20 - len(`{"tool_name":"Bash","tool_use_id":"toolu_1","pad":""}`)
	c = parse(t, hook.ClaudeCode, `{"tool_name":"Bash","tool_use_id":"toolu_1","pad":"`+strings.Repeat("x", pad)+`"}`)
	if c.Tool != "Bash" {
		t.Errorf("Parse at the limit = %+v", c)
	}
	// A PostToolUse without tool_response.
	c = parse(t, hook.ClaudeCode, `{"hook_event_name":"PostToolUse","tool_name":"Bash","tool_use_id":"toolu_1"}`)
	if c.Event != hook.PostToolUse || c.Failed || c.ExitCode != nil {
		t.Errorf("Parse = %+v", c)
	}
}

// mapCase is one row of TestMap: either an action (kind, name, target) or
// a local answer.
type mapCase struct {
	name  string
	call  hook.Call
	kind  string // action kind; "" with local
	tname string // action name
	tgt   writ.Target
	local string // "allow" or "deny"
	why   string // a substring of the local reason
}

func bash(cmd string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"command": cmd})
	return b
}

func input(kv ...string) json.RawMessage {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return b
}

func TestMap(t *testing.T) {
	const cwd = "/home/dev/proj"
	cc := func(tool string, in json.RawMessage) hook.Call {
		return hook.Call{Agent: hook.ClaudeCode, Event: hook.PreToolUse, Tool: tool, Input: in, CallRef: "toolu_1", Cwd: cwd}
	}
	cx := func(tool string, in json.RawMessage) hook.Call {
		c := cc(tool, in)
		c.Agent = hook.Codex
		return c
	}
	cp := func(tool string, in json.RawMessage) hook.Call {
		c := cc(tool, in)
		c.Agent, c.CallRef = hook.Copilot, "copilot_1"
		return c
	}
	edit := func(p string) writ.Target { return writ.Target{Paths: []string{p}} }
	tests := []mapCase{
		// Shell commands are classified (the table is in classify_test.go).
		{name: "bash test", call: cc("Bash", bash("go test ./...")), kind: writ.ActionTool, tname: "shell:test"},
		{name: "bash other", call: cc("Bash", bash("echo hello-from-fake-model > hook_test_out.txt")), kind: writ.ActionTool, tname: "shell:other"},
		{name: "bash net", call: cc("Bash", bash("curl -s https://x.example")), kind: writ.ActionTool, tname: "shell:net"},
		{name: "bash no command", call: cc("Bash", json.RawMessage(`{}`)), kind: writ.ActionTool, tname: "shell:other"},
		{name: "bash input not JSON object", call: cc("Bash", json.RawMessage(`"go test"`)), kind: writ.ActionTool, tname: "shell:other"},
		{name: "bash git push", call: cc("Bash", bash("git push origin writ/r/fix")), kind: writ.ActionGitPush, tgt: writ.Target{Ref: "writ/r/fix"}},
		{name: "bash git push compound", call: cc("Bash", bash("git add . && git push origin main")), kind: writ.ActionTool, tname: "shell:git"},
		{name: "codex git push HEAD:main", call: cx("Bash", bash("git push origin HEAD:main")), kind: writ.ActionGitPush, tgt: writ.Target{Ref: "main"}},
		{name: "codex shell argv", call: cx("shell", json.RawMessage(`{"command":["go","test","./..."]}`)), kind: writ.ActionTool, tname: "shell:test"},
		{name: "codex shell argv bash -lc", call: cx("shell", json.RawMessage(`{"command":["bash","-lc","curl x"]}`)), kind: writ.ActionTool, tname: "shell:other"},
		{name: "codex exec_command", call: cx("exec_command", bash("npm install left-pad")), kind: writ.ActionTool, tname: "shell:pkg"},
		{name: "codex local_shell push", call: cx("local_shell", json.RawMessage(`{"command":["git","push","origin","main"]}`)), kind: writ.ActionGitPush, tgt: writ.Target{Ref: "main"}},

		// Edits inside the workspace name their path relative to it.
		{name: "edit absolute inside", call: cc("Edit", input("file_path", cwd+"/src/log.go")), kind: writ.ActionTool, tname: "edit", tgt: edit("src/log.go")},
		{name: "write relative", call: cc("Write", input("file_path", "src/new.go")), kind: writ.ActionTool, tname: "edit", tgt: edit("src/new.go")},
		{name: "write dot relative", call: cc("Write", input("file_path", "./docs/../src/x.go")), kind: writ.ActionTool, tname: "edit", tgt: edit("src/x.go")},
		{name: "write cleaned inside", call: cc("Write", input("file_path", cwd+"/src/../docs/a.md")), kind: writ.ActionTool, tname: "edit", tgt: edit("docs/a.md")},
		{name: "multiedit", call: cc("MultiEdit", json.RawMessage(`{"file_path":"`+cwd+`/src/a.go","edits":[{"old_string":"a","new_string":"b"}]}`)), kind: writ.ActionTool, tname: "edit", tgt: edit("src/a.go")},
		{name: "notebookedit", call: cc("NotebookEdit", input("notebook_path", cwd+"/nb/a.ipynb", "new_source", "x")), kind: writ.ActionTool, tname: "edit", tgt: edit("nb/a.ipynb")},
		{name: "workflow file", call: cc("Edit", input("file_path", cwd+"/.github/workflows/ci.yml")), kind: writ.ActionTool, tname: "edit", tgt: edit(".github/workflows/ci.yml")},
		{name: "dotdot-prefixed name is inside", call: cc("Write", input("file_path", "..notes")), kind: writ.ActionTool, tname: "edit", tgt: edit("..notes")},
		// … and outside it are denied here, without asking.
		{name: "edit absolute elsewhere", call: cc("Edit", input("file_path", "/etc/passwd")), local: "deny", why: "outside the workspace"},
		{name: "edit home", call: cc("Write", input("file_path", "/home/dev/.bashrc")), local: "deny", why: "outside the workspace"},
		{name: "edit ../ escape", call: cc("Edit", input("file_path", "../other/x.go")), local: "deny", why: "outside the workspace"},
		{name: "edit nested ../ escape", call: cc("Edit", input("file_path", "src/../../x")), local: "deny", why: "outside the workspace"},
		{name: "edit cwd/../x", call: cc("Write", input("file_path", cwd+"/../x")), local: "deny", why: "outside the workspace"},
		{name: "edit sibling with cwd prefix", call: cc("Write", input("file_path", cwd+"X/a.go")), local: "deny", why: "outside the workspace"},
		{name: "edit the workspace itself", call: cc("Write", input("file_path", cwd)), local: "deny", why: "outside the workspace"},
		{name: "notebook outside", call: cc("NotebookEdit", input("notebook_path", "/tmp/a.ipynb")), local: "deny", why: "outside the workspace"},

		// Reads, web, subagents.
		{name: "read", call: cc("Read", input("file_path", cwd+"/src/a.go")), kind: writ.ActionTool, tname: "read"},
		{name: "glob", call: cc("Glob", input("pattern", "**/*.go")), kind: writ.ActionTool, tname: "read"},
		{name: "grep", call: cc("Grep", input("pattern", "logger")), kind: writ.ActionTool, tname: "read"},
		{name: "webfetch", call: cc("WebFetch", input("url", "https://Pkg.Go.Dev:443/log/slog", "prompt", "x")), kind: writ.ActionTool, tname: "web:fetch", tgt: writ.Target{Host: "pkg.go.dev"}},
		{name: "webfetch no url", call: cc("WebFetch", input("prompt", "x")), kind: writ.ActionTool, tname: "web:fetch"},
		{name: "websearch", call: cc("WebSearch", input("query", "slog")), kind: writ.ActionTool, tname: "web:search"},
		{name: "task", call: cc("Task", input("prompt", "review")), kind: writ.ActionTool, tname: "agent:task"},
		{name: "agent", call: cc("Agent", input("prompt", "review")), kind: writ.ActionTool, tname: "agent:task"},

		// MCP tools: mcp__<server>__<tool>.
		{name: "mcp", call: cc("mcp__everything__get-sum", json.RawMessage(`{"a":20,"b":22}`)), kind: writ.ActionMCPCall, tname: "mcp:everything/get-sum"},
		{name: "mcp server case", call: cc("mcp__Everything__echo", json.RawMessage(`{}`)), kind: writ.ActionMCPCall, tname: "mcp:everything/echo"},
		{name: "mcp tool with __", call: cc("mcp__srv__a__b", json.RawMessage(`{}`)), kind: writ.ActionMCPCall, tname: "mcp:srv/a__b"},
		{name: "mcp no tool", call: cc("mcp__x", json.RawMessage(`{}`)), local: "deny", why: "does not know the tool"},
		{name: "mcp empty server", call: cc("mcp____y", json.RawMessage(`{}`)), local: "deny", why: "does not know the tool"},
		{name: "mcp empty tool", call: cc("mcp__x__", json.RawMessage(`{}`)), local: "deny", why: "does not know the tool"},

		// The agent's own bookkeeping is allowed without asking; anything unknown is denied.
		{name: "todowrite", call: cc("TodoWrite", json.RawMessage(`{"todos":[]}`)), local: "allow", why: "bookkeeping"},
		{name: "exitplanmode", call: cc("ExitPlanMode", json.RawMessage(`{}`)), local: "allow", why: "bookkeeping"},
		{name: "unknown tool", call: cc("LaunchMissiles", json.RawMessage(`{}`)), local: "deny", why: `"LaunchMissiles"`},
		{name: "tool names are case-sensitive", call: cc("bash", bash("go test ./...")), local: "deny", why: "does not know the tool"},
		{name: "codex apply_patch", call: cx("apply_patch", bash("*** Begin Patch\n*** Update File: src/a.go\n*** End Patch\n")), kind: writ.ActionTool, tname: "edit", tgt: edit("src/a.go")},
		{name: "codex apply_patch, two files and a move", call: cx("apply_patch", bash("*** Begin Patch\n*** Add File: docs/x.md\n+hi\n*** Update File: src/a.go\n*** Move to: src/b.go\n*** End Patch\n")),
			kind: writ.ActionTool, tname: "edit", tgt: writ.Target{Paths: []string{"docs/x.md", "src/a.go", "src/b.go"}}},
		{name: "codex apply_patch outside the workspace", call: cx("apply_patch", bash("*** Begin Patch\n*** Add File: /etc/cron.d/x\n*** End Patch\n")), local: "deny"},
		{name: "codex apply_patch naming no file", call: cx("apply_patch", bash("rm -rf /")), local: "deny"},

		// Copilot's tool names.
		{name: "copilot bash", call: cp("bash", bash("go test ./...")), kind: writ.ActionTool, tname: "shell:test"},
		{name: "copilot BASH", call: cp("BASH", bash("curl x")), kind: writ.ActionTool, tname: "shell:net"},
		{name: "copilot bash push", call: cp("bash", bash("git push origin HEAD:main")), kind: writ.ActionGitPush, tgt: writ.Target{Ref: "main"}},
		{name: "copilot edit", call: cp("edit", input("path", cwd+"/src/log.go", "old_str", "a", "new_str", "b")), kind: writ.ActionTool, tname: "edit", tgt: edit("src/log.go")},
		{name: "copilot create", call: cp("create", input("path", "src/new.go", "file_text", "x")), kind: writ.ActionTool, tname: "edit", tgt: edit("src/new.go")},
		{name: "copilot create outside", call: cp("create", input("path", "/etc/cron.d/x", "file_text", "x")), local: "deny", why: "outside the workspace"},
		{name: "copilot view", call: cp("view", input("path", cwd+"/README.md")), kind: writ.ActionTool, tname: "read"},
		{name: "copilot report_intent", call: cp("report_intent", input("intent", "x")), local: "allow", why: "bookkeeping"},
		{name: "copilot unknown", call: cp("github-mcp-server-create_issue", json.RawMessage(`{}`)), local: "deny", why: "Copilot's tool"},
		{name: "copilot claude name", call: cp("TodoWrite", json.RawMessage(`{}`)), local: "deny", why: "Copilot's tool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkMap(t, tt) })
	}
}

func checkMap(t *testing.T, tt mapCase) {
	t.Helper()
	c := tt.call
	m := hook.Map(&c)
	if tt.local != "" {
		if m.Action != nil || m.Local != tt.local || !strings.Contains(m.Reason, tt.why) {
			t.Errorf("Map = action %+v, local %q (%s); want local %s saying %q", m.Action, m.Local, m.Reason, tt.local, tt.why)
		}
		return
	}
	if m.Action == nil {
		t.Fatalf("Map = local %q (%s); want %s %s", m.Local, m.Reason, tt.kind, tt.tname)
	}
	a := m.Action
	if a.Kind != tt.kind || a.Name != tt.tname || !reflect.DeepEqual(a.Target, tt.tgt) {
		t.Errorf("Map = %s %q %+v; want %s %q %+v", a.Kind, a.Name, a.Target, tt.kind, tt.tname, tt.tgt)
	}
	if !bytes.Equal(a.Args, c.Input) {
		t.Errorf("Args = %s, want the tool input %s", a.Args, c.Input)
	}
	if err := a.Validate(); err != nil {
		t.Errorf("the action is not valid in writ's grammar: %v", err)
	}
}

// TestMapTestdata maps each PreToolUse input in testdata.
func TestMapTestdata(t *testing.T) {
	tests := map[string]mapCase{
		"claude-code-pretooluse-bash.json":          {kind: writ.ActionTool, tname: "shell:other"},
		"claude-code-pretooluse-bash-gotest.json":   {kind: writ.ActionTool, tname: "shell:test"},
		"claude-code-pretooluse-mcp.json":           {kind: writ.ActionMCPCall, tname: "mcp:everything/get-sum"},
		"claude-code-pretooluse-subagent-edit.json": {kind: writ.ActionTool, tname: "edit", tgt: writ.Target{Paths: []string{".github/workflows/ci.yml"}}},
		"claude-code-pretooluse-write.json":         {kind: writ.ActionTool, tname: "edit", tgt: writ.Target{Paths: []string{"src/log.go"}}},
		"claude-code-pretooluse-edit-outside.json":  {local: "deny", why: "/home/dev/.bashrc, outside the workspace /home/dev/proj"},
		"claude-code-pretooluse-multiedit.json":     {kind: writ.ActionTool, tname: "edit", tgt: writ.Target{Paths: []string{"docs/usage.md"}}},
		"claude-code-pretooluse-notebookedit.json":  {kind: writ.ActionTool, tname: "edit", tgt: writ.Target{Paths: []string{"src/analysis.ipynb"}}},
		"claude-code-pretooluse-read.json":          {kind: writ.ActionTool, tname: "read"},
		"claude-code-pretooluse-webfetch.json":      {kind: writ.ActionTool, tname: "web:fetch", tgt: writ.Target{Host: "pkg.go.dev"}},
		"claude-code-pretooluse-websearch.json":     {kind: writ.ActionTool, tname: "web:search"},
		"claude-code-pretooluse-task.json":          {kind: writ.ActionTool, tname: "agent:task"},
		"claude-code-pretooluse-todowrite.json":     {local: "allow", why: "bookkeeping"},
		"codex-pretooluse-bash.json":                {kind: writ.ActionGitPush, tgt: writ.Target{Ref: "main"}},
		"copilot-pretooluse-bash.json":              {kind: writ.ActionTool, tname: "shell:net"},
		"copilot-pretooluse-bash-gotest.json":       {kind: writ.ActionTool, tname: "shell:test"},
		"copilot-pretooluse-bash-object.json":       {kind: writ.ActionTool, tname: "shell:net"},
		"copilot-pretooluse-edit.json":              {kind: writ.ActionTool, tname: "edit", tgt: writ.Target{Paths: []string{"src/log.go"}}},
		"copilot-pretooluse-create.json":            {kind: writ.ActionTool, tname: "edit", tgt: writ.Target{Paths: []string{".github/workflows/exfil.yml"}}},
		"copilot-pretooluse-view.json":              {kind: writ.ActionTool, tname: "read"},
		"copilot-pretooluse-unknown.json":           {local: "deny", why: "Copilot's tool"},
	}
	for file, tt := range tests {
		t.Run(file, func(t *testing.T) {
			c, err := hook.Parse(agentOf(file), bytes.NewReader(readTestdata(t, file)))
			if err != nil {
				t.Fatal(err)
			}
			tt.call = *c
			checkMap(t, tt)
		})
	}
	// Codex's apply_patch names its files inside the patch.
	t.Run("codex-pretooluse-apply-patch.json", func(t *testing.T) {
		c, err := hook.Parse(hook.Codex, bytes.NewReader(readTestdata(t, "codex-pretooluse-apply-patch.json")))
		if err != nil {
			t.Fatal(err)
		}
		m := hook.Map(c)
		if m.Action == nil || m.Action.Name != "edit" {
			t.Fatalf("Map = %+v, want an edit", m)
		}
		if len(m.Action.Target.Paths) == 0 {
			t.Fatal("hook/hook.go Map: Codex's apply_patch carries its files in tool_input.command " +
				"(\"*** Update File: .github/workflows/ci.yml\"), not in file_path/path, so the edit is asked with no paths and policy's " +
				"path rules (path_not_in_scope, protected_path) and the outside-the-workspace check never apply; parse the " +
				"*** Add/Update/Delete File: and *** Move to: lines into Target.Paths (deny locally when one is outside cwd), and " +
				"deny an edit that names no path")
		}
		if !reflect.DeepEqual(m.Action.Target.Paths, []string{".github/workflows/ci.yml"}) {
			t.Errorf("Paths = %q", m.Action.Target.Paths)
		}
	})
}

// TestMapSymlink: the workspace check is lexical. A symlink inside the
// workspace that points outside it makes an edit "inside" that writes
// outside.
func TestMapSymlink(t *testing.T) {
	dir := t.TempDir()
	ws, outside := filepath.Join(dir, "ws"), filepath.Join(dir, "outside")
	for _, d := range []string{ws, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(ws, "link")); err != nil {
		t.Skip("no symlinks here:", err)
	}
	c := hook.Call{Agent: hook.ClaudeCode, Event: hook.PreToolUse, Tool: "Write", CallRef: "toolu_1", Cwd: ws,
		Input: input("file_path", filepath.Join(ws, "link", "x.sh"))}
	if m := hook.Map(&c); m.Action != nil {
		t.Error("hook/hook.go relative() compares paths lexically, so a Write through ws/link -> outside is an edit of \"link/x.sh\" " +
			"inside the workspace; resolve symlinks of cwd and of the longest existing prefix of the path (filepath.EvalSymlinks) " +
			"before filepath.Rel, and deny when that fails")
	}
}

func TestForDecision(t *testing.T) {
	reasons := []writ.Reason{{Code: "tool_not_in_scope", Message: `tool "shell:net" is not in this run's scope`}, {Code: "x", Message: "y"}}
	tests := []struct {
		name        string
		verdict, id string
		reasons     []writ.Reason
		approval    *writ.ApprovalRef
		allow       bool
		reason      string   // exact, when set
		has         []string // substrings
	}{
		{name: "allow", verdict: writ.VerdictAllow, id: "dec_1", allow: true, reason: "writ allowed (dec_1)"},
		{name: "allow with reasons", verdict: writ.VerdictAllow, id: "dec_1", reasons: reasons, allow: true, reason: "writ allowed (dec_1)"},
		{name: "deny", verdict: writ.VerdictDeny, id: "dec_2", reasons: reasons,
			reason: `writ: tool "shell:net" is not in this run's scope; y (tool_not_in_scope, decision dec_2)`},
		{name: "deny without reasons", verdict: writ.VerdictDeny, id: "dec_3", reason: "writ: denied by policy (denied, decision dec_3)"},
		{name: "approval required", verdict: writ.VerdictApprovalRequired, id: "dec_4",
			reasons:  []writ.Reason{{Code: "protected_path", Message: "the edit changes protected paths"}},
			approval: &writ.ApprovalRef{ID: "apr_01jd", Group: "maintainers", Count: 1},
			reason: "writ: the edit changes protected paths; approval apr_01jd needs 1 approver(s) from \"maintainers\" (writ approvals show apr_01jd) " +
				"(approval_required, decision dec_4); ask again once a human approved it"},
		{name: "approval required without an approval id", verdict: writ.VerdictApprovalRequired, id: "dec_5", approval: &writ.ApprovalRef{Group: "maintainers", Count: 2},
			reason: "writ: this needs a human approval first; it would need 2 approver(s) from \"maintainers\" (approval_required, decision dec_5); ask again once a human approved it"},
		{name: "approval required, no ref", verdict: writ.VerdictApprovalRequired, id: "dec_6",
			reason: "writ: this needs a human approval first (approval_required, decision dec_6); ask again once a human approved it"},
		// Anything but allow is a deny.
		{name: "unknown verdict", verdict: "maybe", id: "dec_7", reason: "writ: denied by policy (denied, decision dec_7)"},
		{name: "empty verdict", verdict: "", id: "dec_8", reason: "writ: denied by policy (denied, decision dec_8)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := hook.ForDecision(tt.verdict, tt.id, tt.reasons, tt.approval)
			if a.Allow != tt.allow {
				t.Errorf("Allow = %v, want %v (%s)", a.Allow, tt.allow, a.Reason)
			}
			if tt.reason != "" && a.Reason != tt.reason {
				t.Errorf("Reason =\n%s\nwant\n%s", a.Reason, tt.reason)
			}
			for _, s := range tt.has {
				if !strings.Contains(a.Reason, s) {
					t.Errorf("Reason %q lacks %q", a.Reason, s)
				}
			}
			// The deny carries exactly the decision's one code and sentence.
			if !tt.allow {
				code, sentence := writ.DecisionMessage(&writ.Decision{ID: tt.id, Verdict: tt.verdict, Reasons: tt.reasons, Approval: tt.approval})
				if !strings.HasPrefix(a.Reason, "writ: "+sentence+" ("+code+", decision "+tt.id+")") {
					t.Errorf("Reason %q does not say writ.DecisionMessage's %s: %q", a.Reason, code, sentence)
				}
			}
		})
	}
}

func TestWrite(t *testing.T) {
	tests := []struct {
		agent string
		a     hook.Answer
		want  string
	}{
		{hook.ClaudeCode, hook.Answer{Allow: true, Reason: "writ allowed (dec_1)"},
			`{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"allow","permissionDecisionReason":"writ allowed (dec_1)"}}` + "\n"},
		{hook.ClaudeCode, hook.Answer{Reason: "writ denied this [dec_2]"},
			`{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"deny","permissionDecisionReason":"writ denied this [dec_2]"}}` + "\n"},
		{hook.Codex, hook.Answer{Reason: "no"},
			`{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"deny","permissionDecisionReason":"no"}}` + "\n"},
		{hook.Codex, hook.Answer{Allow: true, Reason: "ok"},
			`{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"allow","permissionDecisionReason":"ok"}}` + "\n"},
		{hook.Copilot, hook.Answer{Reason: "writ denied this [dec_3]"},
			`{"permissionDecision":"deny","permissionDecisionReason":"writ denied this [dec_3]"}` + "\n"},
		{hook.Copilot, hook.Answer{Allow: true, Reason: "ok"},
			`{"permissionDecision":"allow","permissionDecisionReason":"ok"}` + "\n"},
		// Reasons are escaped, never able to break out of the JSON string.
		{hook.Copilot, hook.Answer{Reason: "a \"quote\"\n</script>"},
			`{"permissionDecision":"deny","permissionDecisionReason":"a \"quote\"\n\u003c/script\u003e"}` + "\n"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := hook.Write(&buf, tt.agent, tt.a); err != nil {
			t.Fatal(err)
		}
		if buf.String() != tt.want {
			t.Errorf("Write(%s, %+v) =\n%s\nwant\n%s", tt.agent, tt.a, buf.String(), tt.want)
		}
	}
	if err := hook.Write(failWriter{}, hook.ClaudeCode, hook.Answer{}); err == nil {
		t.Error("Write to a failing writer: no error")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

// fakeDecider records what it is asked and answers as told.
type fakeDecider struct {
	verdict, id string
	reasons     []writ.Reason
	approval    *writ.ApprovalRef
	err         error

	decided  []decideCall
	outcomes []outcomeCall
}

type decideCall struct {
	action       writ.Action
	via, callRef string
}

type outcomeCall struct {
	via, callRef string
	exitCode     *int
	durationMS   int64
	failed       bool
}

func (f *fakeDecider) Decide(_ context.Context, a writ.Action, via, callRef string) (string, string, []writ.Reason, *writ.ApprovalRef, error) {
	f.decided = append(f.decided, decideCall{a, via, callRef})
	if f.err != nil {
		return "", "", nil, nil, f.err
	}
	return f.verdict, f.id, f.reasons, f.approval, nil
}

func (f *fakeDecider) Outcome(_ context.Context, via, callRef string, exitCode *int, durationMS int64, failed bool) error {
	f.outcomes = append(f.outcomes, outcomeCall{via, callRef, exitCode, durationMS, failed})
	return f.err
}

func handle(t *testing.T, d *fakeDecider, agent, file string) (string, error) {
	t.Helper()
	c, err := hook.Parse(agent, bytes.NewReader(readTestdata(t, file)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = hook.Handle(context.Background(), d, c, &out)
	return out.String(), err
}

// answer decodes what Handle wrote in agent's protocol.
func answer(t *testing.T, agent, out string) (decision, reason string) {
	t.Helper()
	var v struct {
		HookSpecificOutput *struct {
			HookEventName, PermissionDecision, PermissionDecisionReason string
		} `json:"hookSpecificOutput"`
		PermissionDecision, PermissionDecisionReason string
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("the answer is not JSON: %q", out)
	}
	if agent == hook.Copilot {
		if v.HookSpecificOutput != nil {
			t.Errorf("Copilot's answer has hookSpecificOutput: %s", out)
		}
		return v.PermissionDecision, v.PermissionDecisionReason
	}
	if v.HookSpecificOutput == nil || v.HookSpecificOutput.HookEventName != hook.PreToolUse {
		t.Fatalf("answer without hookSpecificOutput for PreToolUse: %s", out)
	}
	return v.HookSpecificOutput.PermissionDecision, v.HookSpecificOutput.PermissionDecisionReason
}

func TestHandlePreToolUse(t *testing.T) {
	tests := []struct {
		file, agent     string
		verdict         string
		wantAction      writ.Action // Kind, Name, Target checked
		wantCallRef     string      // "" for Copilot: checked against Parse
		wantDecision    string
		wantReasonParts []string
	}{
		{file: "claude-code-pretooluse-bash-gotest.json", agent: hook.ClaudeCode, verdict: writ.VerdictAllow,
			wantAction: writ.Action{Kind: writ.ActionTool, Name: "shell:test"}, wantCallRef: "toolu_01DEF",
			wantDecision: "allow", wantReasonParts: []string{"writ allowed (dec_T)"}},
		{file: "claude-code-pretooluse-bash.json", agent: hook.ClaudeCode, verdict: writ.VerdictDeny,
			wantAction: writ.Action{Kind: writ.ActionTool, Name: "shell:other"}, wantCallRef: "toolu_c0580fa2ad5445998ffb",
			wantDecision: "deny", wantReasonParts: []string{"writ: m (tool_not_in_scope, decision dec_T)"}},
		{file: "claude-code-pretooluse-subagent-edit.json", agent: hook.ClaudeCode, verdict: writ.VerdictApprovalRequired,
			wantAction:  writ.Action{Kind: writ.ActionTool, Name: "edit", Target: writ.Target{Paths: []string{".github/workflows/ci.yml"}}},
			wantCallRef: "toolu_01XYZ", wantDecision: "deny",
			wantReasonParts: []string{"writ approvals show apr_T", "(approval_required, decision dec_T)", "once a human approved it"}},
		{file: "claude-code-pretooluse-mcp.json", agent: hook.ClaudeCode, verdict: writ.VerdictDeny,
			wantAction: writ.Action{Kind: writ.ActionMCPCall, Name: "mcp:everything/get-sum"}, wantCallRef: "toolu_01ABC123", wantDecision: "deny"},
		{file: "codex-pretooluse-bash.json", agent: hook.Codex, verdict: writ.VerdictDeny,
			wantAction: writ.Action{Kind: writ.ActionGitPush, Target: writ.Target{Ref: "main"}}, wantCallRef: "call_abc123", wantDecision: "deny"},
		{file: "copilot-pretooluse-bash.json", agent: hook.Copilot, verdict: writ.VerdictDeny,
			wantAction: writ.Action{Kind: writ.ActionTool, Name: "shell:net"}, wantDecision: "deny", wantReasonParts: []string{"(tool_not_in_scope, decision dec_T)"}},
		{file: "copilot-pretooluse-edit.json", agent: hook.Copilot, verdict: writ.VerdictAllow,
			wantAction: writ.Action{Kind: writ.ActionTool, Name: "edit", Target: writ.Target{Paths: []string{"src/log.go"}}}, wantDecision: "allow"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			d := &fakeDecider{verdict: tt.verdict, id: "dec_T",
				reasons: []writ.Reason{{Code: "tool_not_in_scope", Message: "m"}}, approval: &writ.ApprovalRef{ID: "apr_T", Group: "maintainers", Count: 1}}
			if tt.verdict == writ.VerdictAllow {
				d.reasons, d.approval = nil, nil
			}
			out, err := handle(t, d, tt.agent, tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if len(d.decided) != 1 || len(d.outcomes) != 0 {
				t.Fatalf("asked %d times, %d outcomes; want one question", len(d.decided), len(d.outcomes))
			}
			got := d.decided[0]
			if got.via != "hook:"+tt.agent {
				t.Errorf("via = %q, want hook:%s", got.via, tt.agent)
			}
			wantRef := tt.wantCallRef
			if wantRef == "" {
				wantRef = parse(t, tt.agent, string(readTestdata(t, tt.file))).CallRef
			}
			if got.callRef != wantRef {
				t.Errorf("callRef = %q, want %q", got.callRef, wantRef)
			}
			if got.action.Kind != tt.wantAction.Kind || got.action.Name != tt.wantAction.Name || !reflect.DeepEqual(got.action.Target, tt.wantAction.Target) {
				t.Errorf("asked about %s %q %+v, want %s %q %+v", got.action.Kind, got.action.Name, got.action.Target,
					tt.wantAction.Kind, tt.wantAction.Name, tt.wantAction.Target)
			}
			if !strings.HasSuffix(out, "}\n") || strings.Count(out, "\n") != 1 {
				t.Errorf("want one JSON line, got %q", out)
			}
			dec, reason := answer(t, tt.agent, out)
			if dec != tt.wantDecision {
				t.Errorf("answer %q (%s), want %q", dec, reason, tt.wantDecision)
			}
			for _, p := range tt.wantReasonParts {
				if !strings.Contains(reason, p) {
					t.Errorf("reason %q lacks %q", reason, p)
				}
			}
		})
	}
}

func TestHandlePostToolUse(t *testing.T) {
	tests := []struct {
		file, agent string
		want        outcomeCall
	}{
		{"claude-code-posttooluse-bash.json", hook.ClaudeCode, outcomeCall{via: "hook:claude-code", callRef: "toolu_01DEF", durationMS: 1840}},
		{"claude-code-posttooluse-bash-failed.json", hook.ClaudeCode, outcomeCall{via: "hook:claude-code", callRef: "toolu_01VET", exitCode: ptr(1), durationMS: 420, failed: true}},
		{"codex-posttooluse-bash.json", hook.Codex, outcomeCall{via: "hook:codex", callRef: "call_build1"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			d := &fakeDecider{verdict: writ.VerdictAllow, id: "dec_T"}
			out, err := handle(t, d, tt.agent, tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if out != "" {
				t.Errorf("PostToolUse wrote %q; it writes nothing", out)
			}
			if len(d.decided) != 0 {
				t.Errorf("PostToolUse asked %+v", d.decided)
			}
			if len(d.outcomes) != 1 || !reflect.DeepEqual(d.outcomes[0], tt.want) {
				t.Errorf("outcomes = %+v, want [%+v]", d.outcomes, tt.want)
			}
		})
	}
	// A PostToolUse of a call writ did not decide records nothing.
	for _, in := range []string{
		`{"hook_event_name":"PostToolUse","tool_name":"TodoWrite","tool_input":{"todos":[]},"tool_use_id":"toolu_2"}`,
		`{"hook_event_name":"PostToolUse","tool_name":"Edit","tool_input":{"file_path":"/etc/passwd"},"tool_use_id":"toolu_3","cwd":"/w"}`,
	} {
		d := &fakeDecider{}
		var out bytes.Buffer
		if err := hook.Handle(context.Background(), d, parse(t, hook.ClaudeCode, in), &out); err != nil || out.Len() != 0 || len(d.decided)+len(d.outcomes) != 0 {
			t.Errorf("PostToolUse %s: err %v, wrote %q, asked %+v, outcomes %+v", in, err, out.String(), d.decided, d.outcomes)
		}
	}
}

// TestHandleLocal: a call writ answers itself asks nothing.
func TestHandleLocal(t *testing.T) {
	tests := []struct{ file, agent, decision, reason string }{
		{"claude-code-pretooluse-todowrite.json", hook.ClaudeCode, "allow", "writ: the agent's own bookkeeping"},
		{"claude-code-pretooluse-edit-outside.json", hook.ClaudeCode, "deny", "outside the workspace"},
		{"copilot-pretooluse-unknown.json", hook.Copilot, "deny", "writ does not know Copilot's tool"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			d := &fakeDecider{err: errors.New("must not be asked")}
			out, err := handle(t, d, tt.agent, tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if len(d.decided)+len(d.outcomes) != 0 {
				t.Errorf("a local answer asked %+v %+v", d.decided, d.outcomes)
			}
			dec, reason := answer(t, tt.agent, out)
			if dec != tt.decision || !strings.Contains(reason, tt.reason) {
				t.Errorf("answer %q %q, want %q with %q", dec, reason, tt.decision, tt.reason)
			}
		})
	}
}

// TestHandleError: when writ cannot be asked, Handle writes nothing and
// returns the error, so the caller fails closed (exit 2, or Copilot's deny).
func TestHandleError(t *testing.T) {
	boom := errors.New("connection refused")
	for _, tt := range []struct{ file, agent string }{
		{"claude-code-pretooluse-bash-gotest.json", hook.ClaudeCode},
		{"codex-pretooluse-bash.json", hook.Codex},
		{"copilot-pretooluse-bash-gotest.json", hook.Copilot},
		{"claude-code-posttooluse-bash.json", hook.ClaudeCode},
	} {
		t.Run(tt.file, func(t *testing.T) {
			d := &fakeDecider{err: boom}
			out, err := handle(t, d, tt.agent, tt.file)
			if !errors.Is(err, boom) {
				t.Errorf("Handle = %v, want the Decider's error", err)
			}
			if out != "" {
				t.Errorf("Handle wrote %q after an error; the caller answers", out)
			}
		})
	}
}
