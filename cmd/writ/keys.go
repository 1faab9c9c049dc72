package main

import (
	"context"
	"fmt"
)

// keysRotateCommand is `writ keys rotate KIND`.
type keysRotateCommand struct{ noFlags }

func (c *keysRotateCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("keys rotate takes the key kind: identity")
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	kid, err := cl.RotateKey(ctx, args[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s key rotated: new kid %s\n", args[0], kid)
	return nil
}
