package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/writ-dev/writ/client"
)

type killSwitchOpts struct {
	reason string
	off    bool
	json   bool
}

func init() {
	register(&command{
		name: "agent disable", args: "NAME", summary: "kill an agent's runs and refuse new ones until enabled (admins)",
		example: "writ agent disable refactor-bot --reason \"pushing secrets\"",
		flags: func(fs *flag.FlagSet) any {
			o := &killSwitchOpts{}
			fs.StringVar(&o.reason, "reason", "", "why; recorded in the audit event")
			fs.BoolVar(&o.json, "json", false, "print JSON")
			return o
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			o := opts.(*killSwitchOpts)
			if len(args) != 1 {
				return usagef("agent disable takes one agent name")
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			out, err := c.DisableAgent(ctx, args[0], o.reason)
			if err != nil {
				return err
			}
			return printKillSwitch(e, out, o.json, fmt.Sprintf("agent %s disabled; %d run(s) killed", args[0], len(out.Killed)))
		},
	})
	register(&command{
		name: "agent enable", args: "NAME", summary: "let a disabled agent's runs start again (admins)",
		example: "writ agent enable refactor-bot",
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			if len(args) != 1 {
				return usagef("agent enable takes one agent name")
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			out, err := c.EnableAgent(ctx, args[0])
			if err != nil {
				return err
			}
			msg := fmt.Sprintf("agent %s enabled", args[0])
			if !out.Changed {
				msg = fmt.Sprintf("agent %s was not disabled", args[0])
			}
			return printKillSwitch(e, out, false, msg)
		},
	})
	register(&command{
		name: "freeze", summary: "suspend every active run and refuse new ones (admins); --off lifts it",
		example: "writ freeze --reason \"incident 42\"\nwrit freeze --off",
		flags: func(fs *flag.FlagSet) any {
			o := &killSwitchOpts{}
			fs.StringVar(&o.reason, "reason", "", "why; recorded in the audit event")
			fs.BoolVar(&o.off, "off", false, "lift the freeze and resume the runs it suspended")
			fs.BoolVar(&o.json, "json", false, "print JSON")
			return o
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			o := opts.(*killSwitchOpts)
			if len(args) != 0 {
				return usagef("freeze takes no arguments")
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			if o.off {
				out, err := c.Unfreeze(ctx)
				if err != nil {
					return err
				}
				msg := fmt.Sprintf("freeze lifted; %d run(s) resumed", len(out.Resumed))
				if !out.Changed {
					msg = "writ was not frozen"
				}
				return printKillSwitch(e, out, o.json, msg)
			}
			out, err := c.Freeze(ctx, o.reason)
			if err != nil {
				return err
			}
			return printKillSwitch(e, out, o.json, fmt.Sprintf("writ frozen; %d run(s) suspended; no run starts until `writ freeze --off`", len(out.Suspended)))
		},
	})
}

func printKillSwitch(e *env, out *client.KillSwitch, asJSON bool, msg string) error {
	if asJSON {
		return printJSON(e.stdout, out)
	}
	fmt.Fprintln(e.stdout, msg)
	return nil
}
