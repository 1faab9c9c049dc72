package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
)

// runListCommand is `writ run list`.
type runListCommand struct {
	state, agent string
	limit        int
	json         bool
}

func (c *runListCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.state, "state", "", "only runs in this state (active, suspended, ended, killed, expired)")
	fs.StringVar(&c.agent, "agent", "", "only runs of this agent")
	fs.IntVar(&c.limit, "limit", 0, "at most this many runs (default 100)")
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

func (c *runListCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		return usagef("run list takes no arguments")
	}
	cl, err := clientFor(e)
	if err != nil {
		return err
	}
	runs, err := cl.ListRuns(ctx, writ.RunFilter{State: writ.RunState(c.state), Agent: c.agent, Limit: c.limit})
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, runs)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tAGENT\tPROFILE\tSTATE\tTICKET\tDEADLINE")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s:%s\t%s\n", r.ID, r.Agent, r.Profile, r.State, r.Ticket.System, r.Ticket.ID, r.Deadline.Format(time.RFC3339))
	}
	return tw.Flush()
}

// runShowCommand is `writ run show RUN`.
type runShowCommand struct{ json bool }

func (c *runShowCommand) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

func (c *runShowCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("run show takes one run id")
	}
	cl, err := clientFor(e)
	if err != nil {
		return err
	}
	run, err := cl.GetRun(ctx, args[0])
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, run)
	}
	printRun(e.stdout, run)
	return nil
}

func printRun(w io.Writer, r *client.Run) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("run", string(r.ID))
	row("identity", r.SPIFFEID)
	row("state", string(r.State))
	row("agent", r.Agent)
	row("profile", r.Profile)
	row("ticket", r.Ticket.System+":"+r.Ticket.ID)
	row("issuer", r.Issuer+" ("+r.SignerKey+")")
	row("trigger", r.TriggerID+" "+r.TriggerDigest)
	row("created", r.CreatedAt.Format(time.RFC3339))
	row("deadline", r.Deadline.Format(time.RFC3339))
	if !r.EndedAt.IsZero() {
		row("ended", r.EndedAt.Format(time.RFC3339)+" ("+r.EndReason+")")
	}
	for _, repo := range r.Scope.Repos {
		mode := "read"
		if repo.Write {
			mode = "write"
		}
		row("repo", fmt.Sprintf("%s@%s %s %v", repo.Name, repo.Base, mode, repo.Paths))
	}
	row("tools", fmt.Sprint(r.Scope.Tools))
	if len(r.Scope.Hosts) > 0 {
		row("hosts", fmt.Sprint(r.Scope.Hosts))
	}
	row("scope", r.ScopeDigest)
	tw.Flush()
}
