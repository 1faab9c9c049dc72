package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/writ-dev/writ/server"
)

type tokenOpts struct {
	human, config string
	ttl           time.Duration
	bootstrap     bool
	json          bool
}

func init() {
	register(&command{
		name: "token create", summary: "create a human API token (--bootstrap: the first one, straight into the store)",
		example: "writ token create --bootstrap --config writ.yaml --human alice   # once, on the server host\nwrit token create --human bob --ttl 720h                       # then through the API (admins for others)",
		flags: func(fs *flag.FlagSet) any {
			o := &tokenOpts{}
			fs.StringVar(&o.human, "human", "", "the human the token is for (default: the caller)")
			fs.DurationVar(&o.ttl, "ttl", 0, "lifetime (default 720h)")
			fs.BoolVar(&o.bootstrap, "bootstrap", false, "create the first token directly in the store; refused once any token exists")
			fs.StringVar(&o.config, "config", "writ.yaml", "with --bootstrap: the server's config file")
			fs.BoolVar(&o.json, "json", false, "print JSON")
			return o
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			o := opts.(*tokenOpts)
			if len(args) > 0 {
				return usagef("token create takes no arguments")
			}
			if o.bootstrap {
				if o.human == "" {
					return usagef("--bootstrap needs --human NAME")
				}
				cfg, err := server.LoadConfig(o.config)
				if err != nil {
					return err
				}
				ttl := o.ttl
				if ttl == 0 {
					ttl = 720 * time.Hour
				}
				secret, tok, err := server.BootstrapToken(ctx, cfg, o.human, ttl)
				if err != nil {
					return err
				}
				if o.json {
					return printJSON(e.stdout, map[string]any{"token": secret, "id": tok.ID, "human": tok.Human, "expiresAt": tok.ExpiresAt})
				}
				fmt.Fprintln(e.stdout, secret)
				fmt.Fprintf(e.stderr, "writ: token %s for %s expires %s; export WRIT_TOKEN=<the line above>\n", tok.ID, tok.Human, tok.ExpiresAt.Format(time.RFC3339))
				return nil
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			tok, err := c.CreateToken(ctx, o.human, o.ttl)
			if err != nil {
				return err
			}
			if o.json {
				return printJSON(e.stdout, tok)
			}
			fmt.Fprintln(e.stdout, tok.Token)
			fmt.Fprintf(e.stderr, "writ: token %s for %s expires %s\n", tok.ID, tok.Human, tok.ExpiresAt.Format(time.RFC3339))
			return nil
		},
	})
}
