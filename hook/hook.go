// Package hook adapts coding agents' tool-call hooks to writ's decision
// point: it reads what Claude Code, Codex and GitHub Copilot send before
// (and after) each tool call, maps the call into writ's action grammar
// (docs/design.md §4.4) — classifying shell commands as build, test, git,
// network, package installs or other — and writes the answer in each
// agent's own protocol.
//
// Hooks are advisory: an agent may run a tool when its hook fails, times
// out or is skipped (Claude Code does, on exit 1). So adapters fail closed
// wherever the protocol allows — exit 2 for Claude Code and Codex, a deny
// answer for Copilot — and the enforcement stays in writ's gateways (git,
// MCP, broker, egress). An approval_required decision is answered deny,
// naming the approval and the command a human runs; never "ask", which
// would hand the gate to whoever sits at the agent's terminal.
//
// The package parses and formats only; it imports neither the server nor
// the store (the caller brings a [Decider]).
package hook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/internal/strictjson"
)

// Agents this package speaks for.
const (
	ClaudeCode = "claude-code"
	Codex      = "codex"
	Copilot    = "copilot"
)

// Via returns the via of an agent's hook decisions ("hook:claude-code").
func Via(agent string) string { return "hook:" + agent }

// Call is one tool call as an agent's hook reports it.
type Call struct {
	Agent     string
	Event     string // PreToolUse or PostToolUse
	Tool      string // the agent's tool name: Bash, Edit, mcp__srv__tool, bash, …
	Input     json.RawMessage
	CallRef   string // tool_use_id, or for Copilot a hash of timestamp and arguments
	Cwd       string
	Session   string
	Subagent  string // agent_type of a subagent (which belongs to the same run)
	Duration  int64  // PostToolUse: how long the tool ran, in ms, if reported
	Failed    bool   // PostToolUse: whether the agent reported an error
	ExitCode  *int
	EventKind string
}

// Hook events.
const (
	PreToolUse  = "PreToolUse"
	PostToolUse = "PostToolUse"
)

// maxInput bounds what a hook reads from stdin.
const maxInput = 4 << 20

// claudeInput is the hook input of Claude Code and Codex (the same field
// names).
type claudeInput struct {
	SessionID      string          `json:"session_id"`
	TranscriptPath string          `json:"transcript_path"`
	Cwd            string          `json:"cwd"`
	HookEventName  string          `json:"hook_event_name"`
	ToolName       string          `json:"tool_name"`
	ToolInput      json.RawMessage `json:"tool_input"`
	ToolResponse   json.RawMessage `json:"tool_response"`
	ToolUseID      string          `json:"tool_use_id"`
	AgentID        string          `json:"agent_id"`
	AgentType      string          `json:"agent_type"`
	DurationMS     int64           `json:"duration_ms"`
}

// copilotInput is GitHub Copilot's hook input: camelCase; toolArgs is a
// JSON object (Copilot CLI 1.0.102 sends {"command", "description"} for
// bash) or, as Copilot's documentation shows it, a JSON string holding
// one.
type copilotInput struct {
	Timestamp int64           `json:"timestamp"`
	Cwd       string          `json:"cwd"`
	ToolName  string          `json:"toolName"`
	ToolArgs  json.RawMessage `json:"toolArgs"`
}

// copilotArgs returns toolArgs as the JSON of an object: an object as
// sent, a string's content, {} when absent or null.
func copilotArgs(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}"), nil
	}
	args := raw
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("hook input's toolArgs is not a JSON string: %w", err)
		}
		if strings.TrimSpace(s) == "" {
			return json.RawMessage("{}"), nil
		}
		args = json.RawMessage(s)
	}
	if err := strictjson.Decode(args, &map[string]any{}); err != nil {
		return nil, fmt.Errorf("hook input's toolArgs is neither a JSON object nor a string holding one: %w", err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, args); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Parse reads one hook input of agent from r.
func Parse(agent string, r io.Reader) (*Call, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("read hook input: %w", err)
	}
	if len(data) > maxInput {
		return nil, fmt.Errorf("hook input is over %d bytes", maxInput)
	}
	// Agents add fields over time; the input is read leniently for
	// unknown fields but strictly for the ones writ uses (json types).
	switch agent {
	case ClaudeCode, Codex:
		var in claudeInput
		if err := json.Unmarshal(data, &in); err != nil {
			return nil, fmt.Errorf("hook input is not the %s hook JSON: %w", agent, err)
		}
		if err := strictjson.Decode(data, &map[string]any{}); err != nil {
			return nil, fmt.Errorf("hook input: %w", err)
		}
		c := &Call{Agent: agent, Event: in.HookEventName, Tool: in.ToolName, Input: in.ToolInput, CallRef: in.ToolUseID,
			Cwd: in.Cwd, Session: in.SessionID, Subagent: in.AgentType, Duration: in.DurationMS}
		if c.Event == "" {
			c.Event = PreToolUse
		}
		if c.Event != PreToolUse && c.Event != PostToolUse {
			return nil, fmt.Errorf("hook event %q: writ answers PreToolUse and records PostToolUse", c.Event)
		}
		if c.Tool == "" {
			return nil, errors.New("hook input has no tool_name")
		}
		if c.CallRef == "" {
			return nil, errors.New("hook input has no tool_use_id")
		}
		if len(in.ToolResponse) > 0 {
			var resp struct {
				IsError  bool `json:"is_error"`
				ExitCode *int `json:"exit_code"`
			}
			if json.Unmarshal(in.ToolResponse, &resp) == nil {
				c.Failed, c.ExitCode = resp.IsError, resp.ExitCode
			}
		}
		return c, nil
	case Copilot:
		var in copilotInput
		if err := json.Unmarshal(data, &in); err != nil {
			return nil, fmt.Errorf("hook input is not the copilot hook JSON: %w", err)
		}
		if err := strictjson.Decode(data, &map[string]any{}); err != nil {
			return nil, fmt.Errorf("hook input: %w", err)
		}
		if in.ToolName == "" {
			return nil, errors.New("hook input has no toolName")
		}
		args, err := copilotArgs(in.ToolArgs)
		if err != nil {
			return nil, err
		}
		// Copilot sends no call id: the ref is a hash of everything that
		// names the call, so two different calls never share one (the
		// server answers a known ref with the decision it recorded).
		sum := sha256.Sum256([]byte(strconv.FormatInt(in.Timestamp, 10) + "\x00" + in.ToolName + "\x00" + in.Cwd + "\x00" + string(args)))
		return &Call{Agent: agent, Event: PreToolUse, Tool: in.ToolName, Input: args, Cwd: in.Cwd,
			CallRef: "copilot_" + hex.EncodeToString(sum[:16])}, nil
	}
	return nil, fmt.Errorf("unknown agent %q: want claude-code, codex or copilot", agent)
}

// Mapped is a call in writ's terms: the action to decide, or a local
// answer for a call writ does not govern (an agent's own bookkeeping) or
// refuses without asking (a write outside the workspace).
type Mapped struct {
	Action *writ.Action
	// Local, when Action is nil: allow or deny, with Reason.
	Local  string
	Reason string
}

// internalTools are tools that only touch the agent's own state.
var internalTools = map[string]bool{
	"TodoWrite": true, "TodoRead": true, "ExitPlanMode": true, "BashOutput": true, "KillShell": true, "KillBash": true,
	"ListMcpResourcesTool": true, "ReadMcpResourceTool": true, "AskUserQuestion": true,
	"report_intent": true,
}

// Map maps c into writ's action grammar.
func Map(c *Call) Mapped {
	var in map[string]any
	_ = json.Unmarshal(c.Input, &in)
	str := func(k string) string { s, _ := in[k].(string); return s }
	tool := c.Tool
	if c.Agent == Copilot {
		tool = copilotTools[strings.ToLower(tool)]
		if tool == "" {
			return Mapped{Local: "deny", Reason: fmt.Sprintf("writ does not know Copilot's tool %q, so it is denied", c.Tool)}
		}
	}
	if internalTools[tool] {
		return Mapped{Local: "allow", Reason: "the agent's own bookkeeping; nothing outside it changes"}
	}
	if server, name, ok := mcpTool(tool); ok {
		return Mapped{Action: &writ.Action{Kind: writ.ActionMCPCall, Name: "mcp:" + server + "/" + name, Args: c.Input}}
	}
	a := &writ.Action{Kind: writ.ActionTool, Args: c.Input}
	switch tool {
	case "Bash", "shell", "exec_command", "local_shell":
		cmd := str("command")
		if cmd == "" {
			if arr, ok := in["command"].([]any); ok {
				parts := make([]string, 0, len(arr))
				for _, p := range arr {
					parts = append(parts, fmt.Sprint(p))
				}
				cmd = strings.Join(parts, " ")
			}
		}
		if ref, ok := GitPushRef(cmd); ok {
			return Mapped{Action: &writ.Action{Kind: writ.ActionGitPush, Args: c.Input, Target: writ.Target{Ref: ref}}}
		}
		a.Name = Classify(cmd)
	case "Edit", "Write", "MultiEdit", "NotebookEdit", "apply_patch":
		a.Name = "edit"
		var paths []string
		switch {
		case tool == "apply_patch":
			patch := str("command")
			if patch == "" {
				patch = str("input")
			}
			if patch == "" {
				patch = str("patch")
			}
			paths = patchPaths(patch)
			if len(paths) == 0 {
				return Mapped{Local: "deny", Reason: "apply_patch names no file writ can read (*** Add/Update/Delete File: lines), so it is denied"}
			}
		case str("file_path") != "":
			paths = []string{str("file_path")}
		case str("notebook_path") != "":
			paths = []string{str("notebook_path")}
		case str("path") != "":
			paths = []string{str("path")}
		}
		for _, p := range paths {
			rel, ok := relative(c.Cwd, p)
			if !ok {
				return Mapped{Local: "deny", Reason: fmt.Sprintf("%s writes %s, outside the workspace %s: writ denies changes it cannot govern", tool, p, c.Cwd)}
			}
			a.Target.Paths = append(a.Target.Paths, rel)
		}
	case "Read", "Glob", "Grep", "LS", "NotebookRead":
		a.Name = "read"
	case "WebFetch":
		a.Name = "web:fetch"
		if u, err := url.Parse(str("url")); err == nil && u.Hostname() != "" {
			a.Target.Host = strings.ToLower(u.Hostname())
		}
	case "WebSearch":
		a.Name = "web:search"
	case "Task", "Agent":
		a.Name = "agent:task"
	default:
		return Mapped{Local: "deny", Reason: fmt.Sprintf("writ does not know the tool %q, so it is denied (deny by default)", c.Tool)}
	}
	return Mapped{Action: a}
}

// copilotTools maps Copilot's tool names to the Claude Code names Map
// knows.
var copilotTools = map[string]string{
	"bash": "Bash", "shell": "Bash", "powershell": "Bash",
	"edit": "Edit", "create": "Write", "write": "Write", "str_replace": "Edit", "str_replace_editor": "Edit",
	"view": "Read", "read": "Read", "glob": "Glob", "grep": "Grep", "search": "Grep",
	"fetch": "WebFetch", "web_fetch": "WebFetch",
	"task": "Task", "report_intent": "report_intent",
}

// mcpTool splits Claude Code's mcp__<server>__<tool>.
func mcpTool(name string) (server, tool string, ok bool) {
	rest, ok := strings.CutPrefix(name, "mcp__")
	if !ok {
		return "", "", false
	}
	server, tool, ok = strings.Cut(rest, "__")
	if !ok || server == "" || tool == "" {
		return "", "", false
	}
	return strings.ToLower(server), tool, true
}

// relative returns p relative to the workspace cwd, or false when it
// lies outside it. Symbolic links are resolved (for the longest part of p
// that exists), so a link inside the workspace that points outside it
// does not make a write outside look like one inside.
func relative(cwd, p string) (string, bool) {
	if cwd == "" || !filepath.IsAbs(cwd) {
		return "", false
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(cwd, p)
	}
	root, err := filepath.EvalSymlinks(filepath.Clean(cwd))
	if err != nil {
		root = filepath.Clean(cwd)
	}
	resolved := resolve(filepath.Clean(p))
	rel, err := filepath.Rel(root, resolved)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// resolve evaluates the symbolic links of the longest existing prefix of
// the absolute path p and appends the rest.
func resolve(p string) string {
	rest := ""
	for cur := p; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// patchPaths returns the files an apply_patch patch names.
func patchPaths(patch string) []string {
	var out []string
	for _, line := range strings.Split(patch, "\n") {
		line = strings.TrimSpace(line)
		for _, prefix := range []string{"*** Add File: ", "*** Update File: ", "*** Delete File: ", "*** Move to: "} {
			if p, ok := strings.CutPrefix(line, prefix); ok && strings.TrimSpace(p) != "" {
				out = append(out, strings.TrimSpace(p))
			}
		}
	}
	return out
}

// Answer is what the adapter tells the agent.
type Answer struct {
	Allow  bool
	Reason string
}

// ForDecision turns a decision into the answer: allow only for allow;
// anything else is a deny saying the decision's one code and sentence
// (writ.DecisionMessage, as every enforcement point says them), and for
// approval_required that the agent asks again once a human approved.
func ForDecision(verdict, id string, reasons []writ.Reason, approval *writ.ApprovalRef) Answer {
	if verdict == writ.VerdictAllow {
		return Answer{Allow: true, Reason: "writ allowed (" + id + ")"}
	}
	code, sentence := writ.DecisionMessage(&writ.Decision{ID: id, Verdict: verdict, Reasons: reasons, Approval: approval})
	s := fmt.Sprintf("writ: %s (%s, decision %s)", sentence, code, id)
	if verdict == writ.VerdictApprovalRequired {
		s += "; ask again once a human approved it"
	}
	return Answer{Reason: s}
}

// Write writes a PreToolUse answer in agent's protocol.
func Write(w io.Writer, agent string, a Answer) error {
	decision := "deny"
	if a.Allow {
		decision = "allow"
	}
	var v any
	switch agent {
	case Copilot:
		v = map[string]string{"permissionDecision": decision, "permissionDecisionReason": a.Reason}
	default:
		v = map[string]any{"hookSpecificOutput": map[string]string{
			"hookEventName": PreToolUse, "permissionDecision": decision, "permissionDecisionReason": a.Reason}}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Decider is what an adapter needs from writ.
type Decider interface {
	Decide(ctx context.Context, a writ.Action, via, callRef string) (verdict, id string, reasons []writ.Reason, approval *writ.ApprovalRef, err error)
	Outcome(ctx context.Context, via, callRef string, exitCode *int, durationMS int64, failed bool) error
}

// Handle answers one hook call: for PreToolUse it decides and writes the
// answer to w; for PostToolUse it records the outcome and writes nothing.
// An error means the adapter could not answer: the caller fails closed.
func Handle(ctx context.Context, d Decider, c *Call, w io.Writer) error {
	via := Via(c.Agent)
	if c.Event == PostToolUse {
		m := Map(c)
		if m.Action == nil {
			return nil // nothing was decided, so there is nothing to record
		}
		return d.Outcome(ctx, via, c.CallRef, c.ExitCode, c.Duration, c.Failed)
	}
	m := Map(c)
	if m.Action == nil {
		return Write(w, c.Agent, Answer{Allow: m.Local == "allow", Reason: "writ: " + m.Reason})
	}
	verdict, id, reasons, approval, err := d.Decide(ctx, *m.Action, via, c.CallRef)
	if err != nil {
		return err
	}
	return Write(w, c.Agent, ForDecision(verdict, id, reasons, approval))
}
