package main

import (
	"context"
	"flag"
	"fmt"
)

// freezeCommand is `writ freeze`: every active run suspended and no new
// one started, until `writ freeze --off`.
type freezeCommand struct {
	reason string
	off    bool
	json   bool
}

func (c *freezeCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.reason, "reason", "", "why; recorded in the audit event")
	fs.BoolVar(&c.off, "off", false, "lift the freeze and resume the runs it suspended")
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

func (c *freezeCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 0 {
		return usagef("freeze takes no arguments")
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	if c.off {
		out, err := cl.Unfreeze(ctx)
		if err != nil {
			return err
		}
		msg := fmt.Sprintf("freeze lifted; %d run(s) resumed", len(out.Resumed))
		if !out.Changed {
			msg = "writ was not frozen"
		}
		return printKillSwitch(e, out, c.json, msg)
	}
	out, err := cl.Freeze(ctx, c.reason)
	if err != nil {
		return err
	}
	return printKillSwitch(e, out, c.json, fmt.Sprintf("writ frozen; %d run(s) suspended; no run starts until `writ freeze --off`", len(out.Suspended)))
}
