package main

import (
	"context"
	"flag"
	"fmt"
)

// runTransitionCommand is `writ run end|kill|suspend|resume RUN`: verb is
// the transition.
type runTransitionCommand struct {
	verb   string
	reason string
	json   bool
}

func (c *runTransitionCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.reason, "reason", "", "why; recorded in the audit event")
	fs.BoolVar(&c.json, "json", false, "print the run as JSON")
}

func (c *runTransitionCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("run %s takes one run id", c.verb)
	}
	cl, err := clientFor(e)
	if err != nil {
		return err
	}
	run, err := cl.Transition(ctx, args[0], c.verb, c.reason)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, run)
	}
	fmt.Fprintf(e.stdout, "run %s is %s\n", run.ID, run.State)
	return nil
}
