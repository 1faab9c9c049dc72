package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/mcpgw"
)

// mcpProxyCommand is `writ mcp proxy`: an agent's stdio MCP connection
// relayed to writ's gateway.
type mcpProxyCommand struct {
	server, tokenFile, url, runDir string
}

func (c *mcpProxyCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", "", "the MCP server's name in writ's config")
	fs.StringVar(&c.runDir, "run-dir", "", "the run's credentials directory (default WRIT_RUN_DIR): for MCP clients that start stdio servers without their environment")
	fs.StringVar(&c.tokenFile, "token-file", "", "read the run's MCP token from this file, again for every request (default $WRIT_RUN_DIR/mcp-NAME.token, then WRIT_MCP_TOKEN, then one minted with the run's DPoP key)")
	fs.StringVar(&c.url, "url", "", "writ's URL (default WRIT_URL, then $WRIT_RUN_DIR/url)")
}

func (c *mcpProxyCommand) Run(ctx context.Context, e *env, args []string) error {
	if c.server == "" || len(args) > 0 {
		return usagef("mcp proxy needs --server NAME and takes no arguments")
	}
	dir := c.runDir
	if dir == "" {
		dir = e.getenv("WRIT_RUN_DIR")
	}
	base := c.url
	if base == "" {
		base = e.getenv("WRIT_URL")
	}
	if base == "" && dir != "" {
		if b, err := os.ReadFile(filepath.Join(dir, "url")); err == nil {
			base = strings.TrimSpace(string(b))
		}
	}
	if base == "" {
		return usagef("mcp proxy needs writ's URL: --run-dir DIR (a run directory with its url file), --url, WRIT_URL or WRIT_RUN_DIR; MCP clients that start stdio servers without your environment need the flags (writ mcp config prints the entry)")
	}
	base = strings.TrimSuffix(base, "/")
	tokenFile := c.tokenFile
	if tokenFile == "" && dir != "" {
		if p := filepath.Join(dir, "mcp-"+c.server+".token"); fileExists(p) {
			tokenFile = p
		}
	}
	var token func(context.Context) (string, error)
	switch {
	case tokenFile != "":
		token = func(context.Context) (string, error) {
			b, err := os.ReadFile(tokenFile)
			if err != nil {
				return "", err
			}
			t := strings.TrimSpace(string(b))
			if t == "" {
				return "", fmt.Errorf("%s is empty", tokenFile)
			}
			return t, nil
		}
	case e.getenv("WRIT_MCP_TOKEN") != "":
		t := e.getenv("WRIT_MCP_TOKEN")
		token = func(context.Context) (string, error) { return t, nil }
	case dir != "" && fileExists(filepath.Join(dir, "dpop.key")):
		cl, id, err := runClient(e, dir)
		if err != nil {
			return err
		}
		token = mintedToken(cl, id, base+"/mcp/"+c.server)
	default:
		return errors.New("mcp proxy has no run token: pass --run-dir DIR (with mcp-" + c.server + ".token or the run's DPoP key) or --token-file FILE, or set WRIT_RUN_DIR or WRIT_MCP_TOKEN; writ mcp config prints a client's entry with the flags")
	}
	if e.stdin == nil {
		return usagef("mcp proxy relays stdin; there is none")
	}
	// An overloaded writ (503, 429) is retried within the budget, then the
	// agent sees the refusal (docs/design.md §4.11).
	hc := &http.Client{Timeout: 10 * time.Minute, Transport: client.RetryTransport(nil, client.DefaultRetryFor)}
	return mcpgw.Relay(ctx, mcpgw.RelayConfig{URL: base + "/mcp/" + c.server, Token: token, In: e.stdin, Out: e.stdout, HTTPClient: hc})
}

// mcpAcceptCommand is `writ mcp accept NAME`: an MCP server's tools as it
// presents them now, accepted.
type mcpAcceptCommand struct{ json bool }

func (c *mcpAcceptCommand) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

func (c *mcpAcceptCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("mcp accept takes the server's name")
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	out, err := cl.AcceptMCP(ctx, args[0])
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, out)
	}
	names := make([]string, 0, len(out.Tools))
	for n := range out.Tools {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(e.stdout, "accepted %d tools of %s:\n", len(names), out.Server)
	for _, n := range names {
		fmt.Fprintf(e.stdout, "  %s: %q\n", n, out.Tools[n])
	}
	return nil
}

// mintedToken mints MCP tokens with the run's DPoP-bound client, one at a
// time, renewed a minute before they expire.
func mintedToken(c *client.Client, run, audience string) func(context.Context) (string, error) {
	var mu sync.Mutex
	var tok string
	var exp time.Time
	return func(ctx context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if tok != "" && time.Until(exp) > time.Minute {
			return tok, nil
		}
		t, err := c.MintToken(ctx, run, audience, false)
		if err != nil {
			return "", err
		}
		tok, exp = t.Token, t.ExpiresAt
		return tok, nil
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}

// MCP clients `writ mcp config` prints an entry for.
const (
	mcpClientClaudeCode = "claude-code"
	mcpClientCodex      = "codex"
	mcpClientCopilot    = "copilot"
	mcpClientInspector  = "inspector"
)

// mcpConfigCommand is `writ mcp config`: the stdio server entry of `writ
// mcp proxy` for one MCP client, with everything the proxy needs as flags
// (clients start stdio servers without the caller's environment).
type mcpConfigCommand struct {
	client, server, runDir, url, tokenFile, name, writ string
}

func (c *mcpConfigCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.client, "client", "", "the MCP client: claude-code, codex, copilot or inspector")
	fs.StringVar(&c.server, "server", "", "the MCP server's name in writ's config")
	fs.StringVar(&c.runDir, "run-dir", "", "the run's credentials directory (default WRIT_RUN_DIR)")
	fs.StringVar(&c.url, "url", "", "writ's URL, with --token-file instead of a run directory")
	fs.StringVar(&c.tokenFile, "token-file", "", "a file holding the run's MCP token for the server, with --url")
	fs.StringVar(&c.name, "name", "", "the entry's name in the client (default the server's name)")
	fs.StringVar(&c.writ, "writ", "", "the writ binary the client starts (default this one's absolute path)")
}

func (c *mcpConfigCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 || c.server == "" || c.client == "" {
		return usagef("mcp config needs --client %s|%s|%s|%s and --server NAME, and takes no arguments",
			mcpClientClaudeCode, mcpClientCodex, mcpClientCopilot, mcpClientInspector)
	}
	argv := []string{"mcp", "proxy", "--server", c.server}
	abs := func(p string) (string, error) {
		a, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("mcp config: %w", err)
		}
		return a, nil
	}
	switch {
	case c.url != "" || c.tokenFile != "":
		if c.url == "" || c.tokenFile == "" || c.runDir != "" {
			return usagef("mcp config: give --url with --token-file, or --run-dir alone")
		}
		tf, err := abs(c.tokenFile)
		if err != nil {
			return err
		}
		argv = append(argv, "--url", c.url, "--token-file", tf)
	default:
		dir := c.runDir
		if dir == "" {
			dir = e.getenv("WRIT_RUN_DIR")
		}
		if dir == "" {
			return usagef("mcp config needs the run: --run-dir DIR (or WRIT_RUN_DIR), or --url with --token-file")
		}
		d, err := abs(dir)
		if err != nil {
			return err
		}
		argv = append(argv, "--run-dir", d)
	}
	bin := c.writ
	if bin == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("mcp config: finding this writ binary: %w; name it with --writ", err)
		}
		bin = self
	}
	name := c.name
	if name == "" {
		name = c.server
	}
	switch c.client {
	case mcpClientClaudeCode, mcpClientInspector:
		// .mcp.json / `claude mcp add-json`; the inspector's --config file.
		entry := map[string]any{"type": "stdio", "command": bin, "args": argv}
		if c.client == mcpClientInspector {
			delete(entry, "type")
		}
		return printJSON(e.stdout, map[string]any{"mcpServers": map[string]any{name: entry}})
	case mcpClientCopilot:
		// ~/.copilot/mcp-config.json, as `copilot mcp add` writes it.
		return printJSON(e.stdout, map[string]any{"mcpServers": map[string]any{name: map[string]any{
			"type": "local", "command": bin, "args": argv, "tools": []string{"*"}}}})
	case mcpClientCodex:
		// ~/.codex/config.toml, as `codex mcp add` writes it.
		q := make([]string, len(argv))
		for i, a := range argv {
			q[i] = tomlString(a)
		}
		_, err := fmt.Fprintf(e.stdout, "[mcp_servers.%s]\ncommand = %s\nargs = [%s]\n", tomlKey(name), tomlString(bin), strings.Join(q, ", "))
		return err
	}
	return usagef("mcp config: unknown client %q: want %s, %s, %s or %s", c.client, mcpClientClaudeCode, mcpClientCodex, mcpClientCopilot, mcpClientInspector)
}

// tomlString is s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// tomlKey is k as a TOML key: bare when it can be.
func tomlKey(k string) string {
	if k != "" && strings.Trim(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == "" {
		return k
	}
	return tomlString(k)
}
