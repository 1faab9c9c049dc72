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
	server, tokenFile, url string
}

func (c *mcpProxyCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", "", "the MCP server's name in writ's config")
	fs.StringVar(&c.tokenFile, "token-file", "", "read the run's MCP token from this file, again for every request (default $WRIT_RUN_DIR/mcp-NAME.token, then WRIT_MCP_TOKEN, then one minted with the run's DPoP key)")
	fs.StringVar(&c.url, "url", "", "writ's URL (default WRIT_URL, then $WRIT_RUN_DIR/url)")
}

func (c *mcpProxyCommand) Run(ctx context.Context, e *env, args []string) error {
	if c.server == "" || len(args) > 0 {
		return usagef("mcp proxy needs --server NAME and takes no arguments")
	}
	dir := e.getenv("WRIT_RUN_DIR")
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
		return usagef("mcp proxy needs writ's URL: --url, WRIT_URL or WRIT_RUN_DIR")
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
		return errors.New("mcp proxy has no run token: set --token-file, WRIT_MCP_TOKEN, or WRIT_RUN_DIR (with mcp-" + c.server + ".token or the run's DPoP key)")
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
