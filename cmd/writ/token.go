package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/writ-dev/writ/server"
)

// tokenCreateCommand is `writ token create`: a human's API token, through
// the API or, with --bootstrap, the first one straight into the store.
type tokenCreateCommand struct {
	human, config string
	ttl           time.Duration
	bootstrap     bool
	json          bool
}

func (c *tokenCreateCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.human, "human", "", "the human the token is for (default: the caller)")
	fs.DurationVar(&c.ttl, "ttl", 0, "lifetime (default 720h)")
	fs.BoolVar(&c.bootstrap, "bootstrap", false, "create the first token directly in the store; refused once any token exists")
	fs.StringVar(&c.config, "config", "writ.yaml", "with --bootstrap: the server's config file")
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

func (c *tokenCreateCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		return usagef("token create takes no arguments")
	}
	if c.bootstrap {
		if c.human == "" {
			return usagef("--bootstrap needs --human NAME")
		}
		cfg, err := server.LoadConfig(c.config)
		if err != nil {
			return err
		}
		ttl := c.ttl
		if ttl == 0 {
			ttl = 720 * time.Hour
		}
		secret, tok, err := server.BootstrapToken(ctx, cfg, c.human, ttl)
		if err != nil {
			return err
		}
		if c.json {
			return printJSON(e.stdout, map[string]any{"token": secret, "id": tok.ID, "human": tok.Human, "expiresAt": tok.ExpiresAt})
		}
		fmt.Fprintln(e.stdout, secret)
		fmt.Fprintf(e.stderr, "writ: token %s for %s expires %s; export WRIT_TOKEN=<the line above>\n", tok.ID, tok.Human, tok.ExpiresAt.Format(time.RFC3339))
		return nil
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	tok, err := cl.CreateToken(ctx, c.human, c.ttl)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, tok)
	}
	fmt.Fprintln(e.stdout, tok.Token)
	fmt.Fprintf(e.stderr, "writ: token %s for %s expires %s\n", tok.ID, tok.Human, tok.ExpiresAt.Format(time.RFC3339))
	return nil
}
