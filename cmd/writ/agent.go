package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/writ-dev/writ/client"
)

// agentDisableCommand is `writ agent disable NAME`: an agent's kill switch.
type agentDisableCommand struct {
	reason string
	json   bool
}

func (c *agentDisableCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.reason, "reason", "", "why; recorded in the audit event")
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

func (c *agentDisableCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("agent disable takes one agent name")
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	out, err := cl.DisableAgent(ctx, args[0], c.reason)
	if err != nil {
		return err
	}
	return printKillSwitch(e, out, c.json, fmt.Sprintf("agent %s disabled; %d run(s) killed", args[0], len(out.Killed)))
}

// agentEnableCommand is `writ agent enable NAME`.
type agentEnableCommand struct{ noFlags }

func (c *agentEnableCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("agent enable takes one agent name")
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	out, err := cl.EnableAgent(ctx, args[0])
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("agent %s enabled", args[0])
	if !out.Changed {
		msg = fmt.Sprintf("agent %s was not disabled", args[0])
	}
	return printKillSwitch(e, out, false, msg)
}

func printKillSwitch(e *env, out *client.KillSwitch, asJSON bool, msg string) error {
	if asJSON {
		return printJSON(e.stdout, out)
	}
	fmt.Fprintln(e.stdout, msg)
	return nil
}
