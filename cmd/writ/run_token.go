package main

import (
	"context"
	"flag"
	"fmt"
	"time"
)

// runTokenCommand is `writ run token`: a token of the run in WRIT_RUN_DIR
// (or --run-dir) for an audience.
type runTokenCommand struct {
	audience, runDir string
	bind             bool
	json             bool
}

func (c *runTokenCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.audience, "audience", "", "the audience (default: writ's API)")
	fs.BoolVar(&c.bind, "bind", false, "a DPoP-bound API token (refresh) instead of an unbound one")
	fs.StringVar(&c.runDir, "run-dir", "", "the run's credentials (default $WRIT_RUN_DIR)")
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

func (c *runTokenCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		return usagef("run token takes no arguments")
	}
	dir := c.runDir
	if dir == "" {
		dir = e.getenv("WRIT_RUN_DIR")
	}
	if dir == "" {
		return usagef("run token needs the run's credentials: --run-dir DIR or WRIT_RUN_DIR (written by writ run start)")
	}
	cl, id, err := runClient(e, dir)
	if err != nil {
		return err
	}
	t, err := cl.MintToken(ctx, id, c.audience, c.bind)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, t)
	}
	fmt.Fprintln(e.stdout, t.Token)
	fmt.Fprintf(e.stderr, "writ: %s token for %s, expires %s\n", t.TokenType, t.Audience, t.ExpiresAt.Format(time.RFC3339))
	return nil
}
