package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// secretPutCommand is `writ secret put ENV/NAME`: the value from stdin or
// a file, never the command line.
type secretPutCommand struct{ fromFile string }

func (c *secretPutCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.fromFile, "from-file", "", "read the value from this file instead of stdin")
}

func (c *secretPutCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("secret put takes one ENV/NAME; the value comes from stdin or --from-file")
	}
	env, name, ok := strings.Cut(args[0], "/")
	if !ok {
		return usagef("name the secret as ENV/NAME, such as production/stripe-key")
	}
	var value []byte
	var err error
	if c.fromFile != "" {
		value, err = os.ReadFile(c.fromFile)
	} else {
		if e.stdin == nil {
			return usagef("pipe the value on stdin, or give --from-file")
		}
		value, err = io.ReadAll(io.LimitReader(e.stdin, 1<<20))
	}
	if err != nil {
		return err
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	v, err := cl.PutSecret(ctx, env, name, value)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s stored (version %d)\n", args[0], v)
	return nil
}

// secretListCommand is `writ secret list`: names and versions, never values.
type secretListCommand struct{ json bool }

func (c *secretListCommand) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

func (c *secretListCommand) Run(ctx context.Context, e *env, args []string) error {
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	list, err := cl.ListSecrets(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "no secrets")
	}
	for _, s := range list {
		fmt.Fprintf(e.stdout, "%s/%s  v%d  %s by %s\n", s.Environment, s.Name, s.Version, s.UpdatedAt.Format(time.RFC3339), s.UpdatedBy)
	}
	return nil
}

// secretRmCommand is `writ secret rm ENV/NAME`.
type secretRmCommand struct{ noFlags }

func (c *secretRmCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("secret rm takes one ENV/NAME")
	}
	env, name, ok := strings.Cut(args[0], "/")
	if !ok {
		return usagef("name the secret as ENV/NAME, such as staging/db-password")
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	if err := cl.DeleteSecret(ctx, env, name); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s removed\n", args[0])
	return nil
}
