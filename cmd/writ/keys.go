package main

import (
	"context"
	"flag"
	"fmt"
	"time"
)

type runTokenOpts struct {
	audience, runDir string
	bind             bool
	json             bool
}

func init() {
	register(&command{
		name: "keys rotate", args: "identity", summary: "rotate a server key (admins); the old key stays published until its tokens expire",
		example: "writ keys rotate identity",
		run: func(ctx context.Context, e *env, _ any, args []string) error {
			if len(args) != 1 {
				return usagef("keys rotate takes the key kind: identity")
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			kid, err := c.RotateKey(ctx, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s key rotated: new kid %s\n", args[0], kid)
			return nil
		},
	})
	register(&command{
		name: "run token", summary: "mint a token of the current run (WRIT_RUN_DIR) for an audience",
		example: "writ run token --audience https://vault.example.org   # an unbound ≤ 5-minute token for Vault's JWT auth",
		flags: func(fs *flag.FlagSet) any {
			o := &runTokenOpts{}
			fs.StringVar(&o.audience, "audience", "", "the audience (default: writ's API)")
			fs.BoolVar(&o.bind, "bind", false, "a DPoP-bound API token (refresh) instead of an unbound one")
			fs.StringVar(&o.runDir, "run-dir", "", "the run's credentials (default $WRIT_RUN_DIR)")
			fs.BoolVar(&o.json, "json", false, "print JSON")
			return o
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			o := opts.(*runTokenOpts)
			if len(args) > 0 {
				return usagef("run token takes no arguments")
			}
			dir := o.runDir
			if dir == "" {
				dir = e.getenv("WRIT_RUN_DIR")
			}
			if dir == "" {
				return usagef("run token needs the run's credentials: --run-dir DIR or WRIT_RUN_DIR (written by writ run start)")
			}
			c, id, err := runClient(e, dir)
			if err != nil {
				return err
			}
			t, err := c.MintToken(ctx, id, o.audience, o.bind)
			if err != nil {
				return err
			}
			if o.json {
				return printJSON(e.stdout, t)
			}
			fmt.Fprintln(e.stdout, t.Token)
			fmt.Fprintf(e.stderr, "writ: %s token for %s, expires %s\n", t.TokenType, t.Audience, t.ExpiresAt.Format(time.RFC3339))
			return nil
		},
	})
}
