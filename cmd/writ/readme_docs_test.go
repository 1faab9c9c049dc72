package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// docsWithCommands are the pages whose shell and YAML examples
// TestReadmeDocsCommandsParse checks (README.md's own runnable block is
// run for real by TestReadmeSnippets).
var docsWithCommands = []string{
	"README.md",
	"docs/quickstart.md",
	"docs/concepts.md",
	"docs/threat-model.md",
	"docs/integrations/claude-code.md",
	"docs/integrations/codex.md",
	"docs/integrations/copilot.md",
	"docs/integrations/mcp-clients.md",
	"docs/integrations/git.md",
	"docs/integrations/vault-oidc.md",
	"docs/integrations/ci.md",
}

// TestReadmeDocsCommandsParse finds every `writ …` invocation in the
// sh/shell/bash and yaml code blocks of the docs above and checks that it
// names a real command and that its flags parse with that command's flag
// set (positional placeholders such as apr_01… are not checked), so the
// docs cannot name a command or flag the binary does not have.
func TestReadmeDocsCommandsParse(t *testing.T) {
	checked := 0
	for _, doc := range docsWithCommands {
		data, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(doc)))
		if err != nil {
			t.Errorf("%s: %v", doc, err)
			continue
		}
		for _, inv := range writInvocations(string(data)) {
			checked++
			cmd, rest := lookup(inv.args)
			if cmd == nil || (cmd.name == "run" && len(rest) > 0 && !strings.HasPrefix(rest[0], "-")) {
				t.Errorf("%s:%d: `writ %s`: no such command", doc, inv.line, strings.Join(inv.args, " "))
				continue
			}
			fs := flag.NewFlagSet("writ "+cmd.name, flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cmd.new().Flags(fs)
			if _, err := parseInterleaved(fs, rest); err != nil && !errors.Is(err, flag.ErrHelp) {
				t.Errorf("%s:%d: `writ %s`: %v", doc, inv.line, strings.Join(inv.args, " "), err)
			}
		}
	}
	if checked < 20 {
		t.Errorf("found only %d writ invocations in the docs: the extraction is broken", checked)
	}
}

type invocation struct {
	line int
	args []string
}

// writInvocations returns the writ command lines of a Markdown document's
// sh, shell, bash and yaml fenced blocks.
func writInvocations(doc string) []invocation {
	var out []invocation
	lang, pending, start := "", "", 0
	for i, l := range strings.Split(doc, "\n") {
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "```") {
			if lang == "" {
				lang = strings.TrimPrefix(trimmed, "```")
				if lang == "" {
					lang = "text"
				}
			} else {
				lang = ""
			}
			continue
		}
		switch lang {
		case "sh", "shell", "bash", "yaml":
		default:
			continue
		}
		if pending == "" {
			start = i + 1
		}
		if strings.HasSuffix(l, "\\") {
			pending += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		line := pending + l
		pending = ""
		if lang == "yaml" {
			// CI script lines: `- cmd …`, or a line of a `run: |` block.
			line = strings.TrimPrefix(strings.TrimSpace(line), "- ")
		}
		for _, args := range writCommands(shellTokens(line)) {
			out = append(out, invocation{line: start, args: args})
		}
	}
	return out
}

// Separator tokens produced by shellTokens.
const (
	tokSep   = "\x00sep"   // ; && || | $( ) and the like: a new command starts
	tokRedir = "\x00redir" // > < 2> …: the command's words end
)

// shellTokens splits one shell line into words and separators, enough for
// documentation examples: quotes, backslash escapes, $( … ) (also inside
// double quotes), comments, redirections.
func shellTokens(line string) []string {
	var toks []string
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			toks = append(toks, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	var stack []byte // quote modes to return to after $( … )
	mode := byte(0)  // 0, '\'' or '"'
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch mode {
		case '\'':
			if c == '\'' {
				mode = 0
			} else {
				cur.WriteByte(c)
			}
			continue
		case '"':
			switch {
			case c == '"':
				mode = 0
			case c == '\\' && i+1 < len(line):
				i++
				cur.WriteByte(line[i])
			case c == '$' && i+1 < len(line) && line[i+1] == '(':
				flush()
				toks = append(toks, tokSep)
				stack = append(stack, '"')
				mode = 0
				i++
			default:
				cur.WriteByte(c)
			}
			continue
		}
		switch {
		case c == '\'' || c == '"':
			mode = c
			inWord = true
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == ' ' || c == '\t':
			flush()
		case c == '#' && !inWord:
			flush()
			return toks
		case c == '$' && i+1 < len(line) && line[i+1] == '(':
			flush()
			toks = append(toks, tokSep)
			stack = append(stack, 0)
			i++
		case c == ')':
			flush()
			toks = append(toks, tokSep)
			if n := len(stack); n > 0 {
				mode = stack[n-1]
				stack = stack[:n-1]
				if mode == '"' {
					inWord = true
				}
			}
		case c == ';' || c == '|' || c == '&' || c == '(' || c == '`':
			flush()
			toks = append(toks, tokSep)
		case c == '>' || c == '<':
			if inWord && (cur.String() == "2" || cur.String() == "1") {
				cur.Reset()
				inWord = false
			}
			flush()
			toks = append(toks, tokRedir)
			for i+1 < len(line) && (line[i+1] == '>' || line[i+1] == '&') {
				i++
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return toks
}

// writCommands returns the arguments of each writ invocation at a command
// position of the tokens.
func writCommands(toks []string) [][]string {
	var out [][]string
	atStart := true
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t == tokSep:
			atStart = true
			continue
		case t == tokRedir:
			i++ // the redirection's target
			atStart = false
			continue
		case !atStart:
			continue
		case isAssignment(t) || t == "until" || t == "while" || t == "do" || t == "then" || t == "if" || t == "exec" || t == "time" || t == "!" || t == "sudo":
			continue // still at a command position
		}
		atStart = false
		if t != "writ" && t != "./writ" && !strings.HasSuffix(t, "/writ") {
			continue
		}
		var args []string
		for i+1 < len(toks) && toks[i+1] != tokSep && toks[i+1] != tokRedir {
			i++
			args = append(args, toks[i])
		}
		if len(args) > 0 {
			out = append(out, args)
		}
	}
	return out
}

// isAssignment reports NAME=value words before a command.
func isAssignment(w string) bool {
	name, _, ok := strings.Cut(w, "=")
	if !ok || name == "" {
		return false
	}
	for i, c := range name {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
