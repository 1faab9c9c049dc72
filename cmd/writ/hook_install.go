package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/writ-dev/writ/hook"
)

// hookInstallCommand is `writ hook install AGENT`: writes the hook file of
// an agent's CLI, in the shape its installed version reads, and prints
// the step the CLI needs before it runs the hook.
type hookInstallCommand struct {
	dir, file, cli, command string
	force                   bool
}

func (c *hookInstallCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.dir, "dir", ".", "the project (workspace) whose hook file is written: claude-code .claude/settings.json, copilot .github/hooks/writ.json")
	fs.StringVar(&c.file, "file", "", "write this file instead (codex default: $CODEX_HOME/hooks.json, else ~/.codex/hooks.json)")
	fs.StringVar(&c.cli, "cli", "", "the agent's CLI, asked for --version (default claude, codex or copilot on PATH)")
	fs.StringVar(&c.command, "command", "", "the hook command (default this writ binary's absolute path + \" hook AGENT\")")
	fs.BoolVar(&c.force, "force", false, "overwrite a file writ did not write")
}

// hookAgents are the CLIs `writ hook install` knows: the CLI's command
// name, the versions whose hook file was checked against the real CLI,
// and how to read the version out of `--version`.
var hookAgents = map[string]struct {
	cli     string
	checked string // the pinned version (CONTRIBUTING.md §7)
}{
	hook.ClaudeCode: {cli: "claude", checked: "2.1.332"},
	hook.Codex:      {cli: "codex", checked: "0.171.0"},
	hook.Copilot:    {cli: "copilot", checked: "1.0.102"},
}

// writMark is the description writ puts in the hook files whose format
// has a place for one (Codex's "description").
const writMark = "written by `writ hook install`; rewrite it with the same command"

func (c *hookInstallCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("hook install takes the agent: %s, %s or %s", hook.ClaudeCode, hook.Codex, hook.Copilot)
	}
	agent := args[0]
	info, ok := hookAgents[agent]
	if !ok {
		return usagef("hook install: unknown agent %q: want %s, %s or %s", agent, hook.ClaudeCode, hook.Codex, hook.Copilot)
	}
	cli := c.cli
	if cli == "" {
		cli = info.cli
	}
	version, err := cliVersion(ctx, cli)
	if err != nil {
		return fmt.Errorf("hook install %s: %w; install %s, or name it with --cli PATH", agent, err, info.cli)
	}
	command := c.command
	if command == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("hook install: finding this writ binary: %w; name the hook command with --command", err)
		}
		command = shellQuote(self) + " hook " + agent
	}
	path := c.file
	if path == "" {
		path, err = hookFilePath(agent, c.dir, e.getenv)
		if err != nil {
			return err
		}
	}
	want := hookFile(agent, command)
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("hook install: %w", err)
	case !c.force && !writtenByWrit(agent, old):
		return fmt.Errorf("hook install: %s exists and writ did not write it: merge the hook below into it by hand, or overwrite it with --force\n%s", path, mustIndent(want))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("hook install: %w", err)
	}
	if err := os.WriteFile(path, append(mustIndent(want), '\n'), 0o644); err != nil {
		return fmt.Errorf("hook install: %w", err)
	}
	fmt.Fprintf(e.stdout, "wrote %s for %s %s (hook command: %s)\n", path, info.cli, version, command)
	if cmpVersion(version, info.checked) < 0 {
		fmt.Fprintf(e.stdout, "note: writ checked this hook file against %s %s; %s is older: check that a denied call is blocked before relying on it\n", info.cli, info.checked, version)
	}
	abs, _ := filepath.Abs(c.dir)
	switch agent {
	case hook.Codex:
		fmt.Fprintf(e.stdout, "next: Codex runs only hooks it trusts. Start `codex` once in the project and answer \"Hooks need review\" with \"Trust all and continue\" "+
			"(it trusts this file as it is now; rewriting it asks again), or, for automation that vets the file itself, run `codex exec --dangerously-bypass-hook-trust …`.\n")
	case hook.Copilot:
		fmt.Fprintf(e.stdout, "next: Copilot runs a repository's hooks only in a trusted folder: `copilot config trustedFolders %s` (saved), or `copilot --trust-folder -p …` (one prompt-mode session).\n", abs)
	case hook.ClaudeCode:
		fmt.Fprintf(e.stdout, "next: Claude Code reads the project's .claude/settings.json with no further step; `writ run` writes its own settings for the agent it launches. "+
			"To keep an agent from removing the hook, install it as a managed setting (docs/hooks.md).\n")
	}
	return nil
}

// hookFilePath is where agent's CLI reads the hook file by default.
func hookFilePath(agent, dir string, getenv func(string) string) (string, error) {
	switch agent {
	case hook.ClaudeCode:
		return filepath.Join(dir, ".claude", "settings.json"), nil
	case hook.Copilot:
		return filepath.Join(dir, ".github", "hooks", "writ.json"), nil
	}
	if h := getenv("CODEX_HOME"); h != "" {
		return filepath.Join(h, "hooks.json"), nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", errors.New("hook install codex: neither CODEX_HOME nor HOME is set: name the file with --file")
	}
	return filepath.Join(home, ".codex", "hooks.json"), nil
}

// hookFile is the hook file of agent running command, as the checked
// version of its CLI reads it.
func hookFile(agent, command string) map[string]any {
	entry := func(extra map[string]any) []any {
		h := map[string]any{"type": "command", "command": command}
		outer := map[string]any{"hooks": []any{h}}
		for k, v := range extra {
			outer[k] = v
		}
		return []any{outer}
	}
	switch agent {
	case hook.ClaudeCode:
		m := map[string]any{"matcher": "*"}
		return map[string]any{"hooks": map[string]any{hook.PreToolUse: entry(m), hook.PostToolUse: entry(m)}}
	case hook.Codex:
		// Codex 0.171.0 refuses events at the top level ("unknown field
		// `PreToolUse`, expected `description` or `hooks`").
		return map[string]any{"description": writMark, "hooks": map[string]any{hook.PreToolUse: entry(nil), hook.PostToolUse: entry(nil)}}
	default: // Copilot
		return map[string]any{"version": 1, "hooks": map[string]any{"preToolUse": []any{map[string]any{"type": "command", "bash": command}}}}
	}
}

// hookCommandRE matches a writ hook command (any path to writ, quoted or
// not) in a file writ may have written.
var hookCommandRE = regexp.MustCompile(`^('[^']*'|\S+) hook (claude-code|codex|copilot)$`)

// writtenByWrit reports whether b is a hook file writ writes for agent
// (with any writ hook command), or the shape writ's docs gave before
// (Codex's events at the top level), so rewriting it loses nothing.
func writtenByWrit(agent string, b []byte) bool {
	var got any
	if json.Unmarshal(b, &got) != nil {
		return false
	}
	var cmd string
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && (k == "command" || k == "bash") && hookCommandRE.MatchString(s) {
					cmd = s
				}
				x[k] = walk(e)
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		}
		return v
	}
	got = walk(got)
	if cmd == "" {
		return false
	}
	norm := func(v any) any {
		b, _ := json.Marshal(v)
		var out any
		_ = json.Unmarshal(b, &out)
		return out
	}
	candidates := []any{norm(hookFile(agent, cmd))}
	if agent == hook.Codex {
		inner := hookFile(agent, cmd)["hooks"]
		candidates = append(candidates, norm(inner))
		if m, ok := norm(inner).(map[string]any); ok {
			delete(m, hook.PostToolUse)
			candidates = append(candidates, m)
		}
	}
	for _, c := range candidates {
		if reflect.DeepEqual(got, c) {
			return true
		}
	}
	return false
}

func mustIndent(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

// shellQuote quotes p for a hook command line when it needs it.
func shellQuote(p string) string {
	if p != "" && strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+") == "" {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}

var versionRE = regexp.MustCompile(`\b(\d+)\.(\d+)\.(\d+)\b`)

// cliVersion runs `cli --version` and returns the first x.y.z it prints.
func cliVersion(ctx context.Context, cli string) (string, error) {
	bin, err := exec.LookPath(cli)
	if err != nil {
		return "", fmt.Errorf("%s not found", cli)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--version")
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s --version: %v: %s", bin, err, strings.TrimSpace(out.String()))
	}
	v := versionRE.FindString(out.String())
	if v == "" {
		return "", fmt.Errorf("%s --version printed no version: %q", bin, strings.TrimSpace(out.String()))
	}
	return v, nil
}

// cmpVersion compares two x.y.z versions.
func cmpVersion(a, b string) int {
	pa, pb := versionRE.FindStringSubmatch(a), versionRE.FindStringSubmatch(b)
	for i := 1; i <= 3 && pa != nil && pb != nil; i++ {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
