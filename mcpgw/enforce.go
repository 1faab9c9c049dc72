package mcpgw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/decision"
)

// JSON-RPC error codes of the gateway (the implementation-defined server
// error range).
const (
	// CodeDenied: policy denied the call; data carries decision and reasons.
	CodeDenied = -32010
	// CodeQuarantined: the server is quarantined until an admin accepts it.
	CodeQuarantined = -32011
	// CodeUnavailable: the upstream cannot be reached.
	CodeUnavailable = -32012
	// CodeRefused: the call could not be decided or recorded (fail closed).
	CodeRefused = -32013
	// CodeApprovalRequired: the call waits for a human approval; data
	// carries decision, code, reasons and the approval {id, group, count}.
	CodeApprovalRequired = -32014
)

// enforce is the receiving middleware of the server writ presents: it
// answers tools/list and tools/call itself; the rest (initialize, ping,
// notifications, empty resource and prompt lists) is the SDK's.
func (u *upstream) enforce(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		switch method {
		case "tools/list":
			return u.listTools(ctx, req)
		case "tools/call":
			return u.callTool(ctx, req)
		}
		return next(ctx, method, req)
	}
}

// runOf returns the run the HTTP request authenticated as.
func runOf(req mcp.Request) (*writ.Run, error) {
	if ex := req.GetExtra(); ex != nil && ex.TokenInfo != nil {
		if run, ok := ex.TokenInfo.Extra["run"].(*writ.Run); ok && run != nil {
			return run, nil
		}
	}
	return nil, &jsonrpc.Error{Code: CodeRefused, Message: "writ: the request carries no run identity"}
}

func (u *upstream) listTools(ctx context.Context, req mcp.Request) (mcp.Result, error) {
	run, err := runOf(req)
	if err != nil {
		return nil, err
	}
	visible, err := u.refresh(ctx)
	if err != nil {
		u.log.WarnContext(ctx, "listing upstream tools", slog.Any("error", err))
		return nil, &jsonrpc.Error{Code: CodeUnavailable, Message: fmt.Sprintf("writ: mcp server %q is unavailable", u.cfg.Name)}
	}
	out := &mcp.ListToolsResult{Tools: []*mcp.Tool{}}
	for _, t := range visible {
		if inScope(run, u.cfg.Name, t.Name) {
			out.Tools = append(out.Tools, t)
		}
	}
	return out, nil
}

func inScope(run *writ.Run, server, tool string) bool {
	name := "mcp:" + server + "/" + tool
	return slices.ContainsFunc(run.Scope.Tools, func(p string) bool { return writ.MatchTool(p, name) })
}

// visibleTool reports whether tool is accepted and present, and whether
// the server is quarantined.
func (u *upstream) visibleTool(name string) (ok, quarantined bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.quarantined {
		return false, true
	}
	k, known := u.known[name]
	return known && u.digests[name] == k && u.tools[name] != nil, false
}

func (u *upstream) callTool(ctx context.Context, req mcp.Request) (mcp.Result, error) {
	run, err := runOf(req)
	if err != nil {
		return nil, err
	}
	ctr, ok := req.(*mcp.CallToolRequest)
	if !ok || ctr.Params == nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "writ: tools/call without params"}
	}
	p := ctr.Params
	action := writ.Action{Kind: writ.ActionMCPCall, Name: "mcp:" + u.cfg.Name + "/" + p.Name}
	if err := action.Validate(); err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("writ: tool name %q is not a valid tool name", p.Name)}
	}
	// The tools cache must know the tool: refresh once when it does not
	// (a first call before any tools/list).
	visible, quarantined := u.visibleTool(p.Name)
	if !visible && !quarantined {
		if _, err := u.refresh(ctx); err != nil {
			u.log.WarnContext(ctx, "listing upstream tools", slog.Any("error", err))
			return nil, &jsonrpc.Error{Code: CodeUnavailable, Message: fmt.Sprintf("writ: mcp server %q is unavailable", u.cfg.Name)}
		}
		visible, quarantined = u.visibleTool(p.Name)
	}
	if quarantined {
		return nil, &jsonrpc.Error{Code: CodeQuarantined, Message: fmt.Sprintf("writ: mcp server %q is quarantined: a tool descriptor changed; an admin must review and accept it (writ mcp accept %s)", u.cfg.Name, u.cfg.Name)}
	}
	if !visible {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("writ: unknown tool %q", p.Name)}
	}

	args, facts, err := u.arguments(run, p.Arguments, u.redacted(p.Name))
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "writ: " + err.Error()}
	}
	action.Args = args
	d, err := u.gw.cfg.Decider.Decide(ctx, &decision.Request{
		Run: run, Action: action, Via: "mcp", Actor: "run:" + string(run.ID), ArgFacts: facts,
	})
	if err != nil {
		// Fail closed: no decision on record, no call.
		u.log.ErrorContext(ctx, "mcp call not decided; refused", slog.String("run", string(run.ID)), slog.String("tool", action.Name), slog.Any("error", err))
		msg := "writ: the call could not be decided and recorded, so it is refused"
		var we *writ.Error
		if errors.As(err, &we) && we.Kind != writ.KindInternal {
			msg += ": " + we.Message
		}
		return nil, &jsonrpc.Error{Code: CodeRefused, Message: msg}
	}
	// Refused: the one code and sentence of the decision, as every
	// enforcement point says it.
	code, sentence := writ.DecisionMessage(d)
	switch d.Verdict {
	case writ.VerdictAllow:
	case writ.VerdictApprovalRequired:
		// A JSON-RPC error, as every refusal (docs/design.md §4.4), that
		// names the approval and how a human gives it.
		how := "a human approves it"
		if d.Approval != nil {
			how = fmt.Sprintf("a human of %q approves it (writ approvals approve %s)", d.Approval.Group, d.Approval.ID)
		}
		data, _ := json.Marshal(map[string]any{"decision": d.ID, "code": code, "reasons": d.Reasons, "approval": d.Approval})
		return nil, &jsonrpc.Error{Code: CodeApprovalRequired, Data: data,
			Message: fmt.Sprintf("writ: %s (%s, decision %s); call %s again once %s", sentence, code, d.ID, action.Name, how)}
	default:
		data, _ := json.Marshal(map[string]any{"decision": d.ID, "code": code, "reasons": d.Reasons})
		return nil, &jsonrpc.Error{Code: CodeDenied, Message: fmt.Sprintf("writ: %s (%s, decision %s)", sentence, code, d.ID), Data: data}
	}

	cctx, cancel := detach(ctx, u.gw.cfg.CallTimeout)
	defer cancel()
	cs, err := u.connect(cctx)
	if err != nil {
		u.log.WarnContext(ctx, "mcp upstream", slog.Any("error", err))
		return nil, &jsonrpc.Error{Code: CodeUnavailable, Message: fmt.Sprintf("writ: mcp server %q is unavailable (decision %s)", u.cfg.Name, d.ID)}
	}
	u.mu.Lock()
	u.calls++
	u.mu.Unlock()
	var raw json.RawMessage
	if len(p.Arguments) > 0 {
		raw = p.Arguments
	}
	start := u.gw.now()
	res, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: p.Name, Arguments: raw})
	if err != nil {
		var je *jsonrpc.Error
		if errors.As(err, &je) {
			u.outcome(ctx, run, d.ID, start, fmt.Sprintf("the upstream answered JSON-RPC error %d", je.Code))
			return nil, je
		}
		u.outcome(ctx, run, d.ID, start, "the upstream call failed")
		u.log.WarnContext(ctx, "mcp upstream call failed", slog.String("tool", action.Name), slog.Any("error", err))
		return nil, &jsonrpc.Error{Code: CodeUnavailable, Message: fmt.Sprintf("writ: the upstream call failed (decision %s)", d.ID)}
	}
	b, err := json.Marshal(res)
	if err != nil || len(b) > u.gw.cfg.MaxResultBytes {
		u.outcome(ctx, run, d.ID, start, "the result was over the gateway's limit")
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{
			Text: fmt.Sprintf("writ: the result of %s is %d bytes, over the gateway's limit of %d (decision %s)", action.Name, len(b), u.gw.cfg.MaxResultBytes, d.ID)}}}, nil
	}
	failed := ""
	if res.IsError {
		failed = "the tool reported an error"
	}
	u.outcome(ctx, run, d.ID, start, failed)
	return res, nil
}

// outcome records what an allowed call did: failed is "" for success, else
// writ's own words for the failure (never the upstream's text, which may
// quote anything). A failure to record is logged; the call has happened.
func (u *upstream) outcome(ctx context.Context, run *writ.Run, decision string, start time.Time, failed string) {
	if u.gw.cfg.Outcomes == nil {
		return
	}
	ms := u.gw.now().Sub(start).Milliseconds()
	if ms < 0 {
		ms = 0
	}
	o := &writ.Outcome{DurationMS: ms, Error: failed}
	ev := &writ.Event{Type: writ.EventDecisionOutcome, Actor: "run:" + string(run.ID), Subject: decision,
		Details: map[string]any{"decision": decision, "durationMs": ms, "failed": failed != "", "via": "mcp"}}
	rctx, cancel := detach(ctx, 10*time.Second)
	defer cancel()
	if err := u.gw.cfg.Outcomes.RecordOutcome(rctx, run.ID, decision, o, ev); err != nil {
		u.log.WarnContext(ctx, "recording an mcp call's outcome", slog.String("run", string(run.ID)), slog.String("decision", decision), slog.Any("error", err))
	}
}

// arguments returns the action's arguments as recorded (compact JSON, or
// only their digest and size when they are too large to record) and the
// facts policy sees about them.
func (u *upstream) arguments(run *writ.Run, raw json.RawMessage, redact bool) (json.RawMessage, *decision.ArgFacts, error) {
	facts := &decision.ArgFacts{}
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, facts, nil
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, nil, fmt.Errorf("arguments are not JSON: %v", err)
	}
	if dec.More() {
		return nil, nil, errors.New("arguments hold more than one JSON value")
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, nil, errors.New("arguments must be a JSON object")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, nil, err
	}
	args := json.RawMessage(buf.Bytes())
	switch {
	case redact:
		// A redaction rule: the record keeps the digest and size only;
		// the facts below still come from the real arguments.
		sum := sha256.Sum256(args)
		args, _ = json.Marshal(map[string]any{"digest": "sha256:" + hex.EncodeToString(sum[:]), "bytes": len(buf.Bytes()), "redacted": true})
	case len(args) > writ.MaxActionArgs:
		sum := sha256.Sum256(args)
		args, _ = json.Marshal(map[string]any{"digest": "sha256:" + hex.EncodeToString(sum[:]), "bytes": len(buf.Bytes())})
	}
	ws := u.workspace(run)
	budget := maxURLCandidates
	var walk func(key string, v any, depth int) error
	walk = func(key string, v any, depth int) error {
		if depth > 32 {
			return errors.New("arguments are nested deeper than 32 levels")
		}
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if err := walk(k, e, depth+1); err != nil {
					return err
				}
			}
		case []any:
			for _, e := range x {
				if err := walk(key, e, depth+1); err != nil {
					return err
				}
			}
		case string:
			addHost := func(h string) {
				if h != "" && !slices.Contains(facts.Hosts, h) {
					facts.Hosts = append(facts.Hosts, h)
				}
			}
			// The string as a URL parser reads it, and every URL inside
			// it (urlhost.go).
			whole, isURL := wholeURL(x)
			embedded, ok := embeddedURLs(x, budget)
			if !ok {
				return fmt.Errorf("arguments hold more than %d URL candidates", maxURLCandidates)
			}
			budget -= len(embedded)
			addHost(whole.host)
			for _, f := range embedded {
				addHost(f.host)
			}
			p, isPath := "", false
			switch {
			case isURL && whole.isFile:
				p, isPath = whole.filePath(), true
			case isURL && whole.hasHost:
			case pathKey(key) && x != "":
				p, isPath = x, true
			}
			if isPath {
				resolved, inside := within(ws, p)
				facts.Paths = append(facts.Paths, resolved)
				if !inside {
					facts.OutsideWorkspace = append(facts.OutsideWorkspace, resolved)
				}
			}
		}
		return nil
	}
	if err := walk("", v, 0); err != nil {
		return nil, nil, err
	}
	if len(facts.Paths) > writ.MaxActionPaths || len(facts.Hosts) > writ.MaxActionPaths {
		return nil, nil, errors.New("arguments name too many paths or URLs")
	}
	slices.Sort(facts.Paths)
	slices.Sort(facts.OutsideWorkspace)
	slices.Sort(facts.Hosts)
	return args, facts, nil
}

func (u *upstream) workspace(run *writ.Run) string {
	if u.cfg.Workspace == "" {
		return ""
	}
	return path.Clean(strings.ReplaceAll(u.cfg.Workspace, "{run}", string(run.ID)))
}

// within resolves p (relative to ws when not absolute) and reports whether
// it stays inside ws. The check is lexical: the upstream resolves symbolic
// links itself (server-filesystem refuses links out of its roots).
func within(ws, p string) (string, bool) {
	p = strings.ReplaceAll(p, "\\", "/")
	if strings.HasPrefix(p, "~") {
		return p, false
	}
	if !path.IsAbs(p) {
		if ws == "" {
			return p, false
		}
		p = path.Join(ws, p)
	}
	p = path.Clean(p)
	if ws == "" {
		return p, false
	}
	return p, p == ws || strings.HasPrefix(p, strings.TrimSuffix(ws, "/")+"/")
}

// pathKey reports whether an argument key names a filesystem path: one
// of its words (split at case changes, "_", "-" and ".") is a path word.
func pathKey(k string) bool {
	var words []string
	start := 0
	for i := 1; i <= len(k); i++ {
		if i == len(k) || k[i] == '_' || k[i] == '-' || k[i] == '.' || (k[i] >= 'A' && k[i] <= 'Z' && k[i-1] >= 'a' && k[i-1] <= 'z') {
			if w := strings.Trim(k[start:i], "_-."); w != "" {
				words = append(words, strings.ToLower(w))
			}
			start = i
		}
	}
	for _, w := range words {
		switch w {
		case "path", "paths", "file", "files", "filename", "filepath", "filenames", "dir", "dirs", "directory", "directories",
			"folder", "root", "roots", "source", "destination", "src", "dst", "dest", "cwd":
			return true
		}
	}
	return false
}

// maxURLCandidates bounds the places one call's arguments may hold a
// scheme and ":" (each is read as a URL).
const maxURLCandidates = 10000

// redacted reports whether a redaction rule of the server covers tool: its
// arguments are then recorded as their digest only.
func (u *upstream) redacted(tool string) bool {
	return slices.Contains(u.cfg.Redact, tool) || slices.Contains(u.cfg.Redact, "*")
}
