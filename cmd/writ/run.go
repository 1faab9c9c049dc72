package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
)

type runStartOpts struct {
	trigger string
	json    bool
}

type runListOpts struct {
	state, agent string
	limit        int
	json         bool
}

type runVerbOpts struct {
	reason string
	json   bool
}

func init() {
	register(&command{
		name: "run start", summary: "start a run from a signed trigger (the trigger is the credential)",
		example: "writ run start --trigger t.signed.json\nwrit run start --trigger t.signed.json --json | jq -r .id",
		flags: func(fs *flag.FlagSet) any {
			o := &runStartOpts{}
			fs.StringVar(&o.trigger, "trigger", "", "signed trigger file (DSSE envelope or payload+sshsig JSON); - for stdin")
			fs.BoolVar(&o.json, "json", false, "print the whole run as JSON")
			return o
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			o := opts.(*runStartOpts)
			if o.trigger == "" || len(args) > 0 {
				return usagef("run start needs --trigger FILE and no arguments")
			}
			body, err := readInput(o.trigger)
			if err != nil {
				return err
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			run, err := c.StartRun(ctx, body)
			if err != nil {
				return err
			}
			if o.json {
				return printJSON(e.stdout, run)
			}
			fmt.Fprintf(e.stdout, "run %s started\nidentity %s\ndeadline %s\n", run.ID, run.SPIFFEID, run.Deadline.Format(time.RFC3339))
			return nil
		},
	})
	register(&command{
		name: "run list", summary: "list runs, newest first",
		example: "writ run list --state active",
		flags: func(fs *flag.FlagSet) any {
			o := &runListOpts{}
			fs.StringVar(&o.state, "state", "", "only runs in this state (active, suspended, ended, killed, expired)")
			fs.StringVar(&o.agent, "agent", "", "only runs of this agent")
			fs.IntVar(&o.limit, "limit", 0, "at most this many runs (default 100)")
			fs.BoolVar(&o.json, "json", false, "print JSON")
			return o
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			o := opts.(*runListOpts)
			if len(args) > 0 {
				return usagef("run list takes no arguments")
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			runs, err := c.ListRuns(ctx, writ.RunFilter{State: writ.RunState(o.state), Agent: o.agent, Limit: o.limit})
			if err != nil {
				return err
			}
			if o.json {
				return printJSON(e.stdout, runs)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN\tAGENT\tPROFILE\tSTATE\tTICKET\tDEADLINE")
			for _, r := range runs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s:%s\t%s\n", r.ID, r.Agent, r.Profile, r.State, r.Ticket.System, r.Ticket.ID, r.Deadline.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	})
	register(&command{
		name: "run show", args: "RUN", summary: "show one run",
		example: "writ run show 01jd3v4k5m6n7p8q9r0s1t2v3w",
		flags: func(fs *flag.FlagSet) any {
			return fs.Bool("json", false, "print JSON")
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			if len(args) != 1 {
				return usagef("run show takes one run id")
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			run, err := c.GetRun(ctx, args[0])
			if err != nil {
				return err
			}
			if *opts.(*bool) {
				return printJSON(e.stdout, run)
			}
			printRun(e.stdout, run)
			return nil
		},
	})
	verbs := map[string]string{
		"end":     "end a run; its credentials die with it",
		"kill":    "kill a run (admins)",
		"suspend": "suspend a run: its tokens are refused until a human resumes it",
		"resume":  "resume a suspended run (admins)",
	}
	for _, verb := range []string{"end", "kill", "suspend", "resume"} {
		register(&command{
			name: "run " + verb, args: "RUN", summary: verbs[verb],
			example: fmt.Sprintf("writ run %s 01jd3v4k5m6n7p8q9r0s1t2v3w --reason \"ticket closed\"", verb),
			flags: func(fs *flag.FlagSet) any {
				o := &runVerbOpts{}
				fs.StringVar(&o.reason, "reason", "", "why; recorded in the audit event")
				fs.BoolVar(&o.json, "json", false, "print the run as JSON")
				return o
			},
			run: func(ctx context.Context, e *env, opts any, args []string) error {
				o := opts.(*runVerbOpts)
				if len(args) != 1 {
					return usagef("run %s takes one run id", verb)
				}
				c, err := newClient(e)
				if err != nil {
					return err
				}
				run, err := c.Transition(ctx, args[0], verb, o.reason)
				if err != nil {
					return err
				}
				if o.json {
					return printJSON(e.stdout, run)
				}
				fmt.Fprintf(e.stdout, "run %s is %s\n", run.ID, run.State)
				return nil
			},
		})
	}
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

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// readInput reads a file, or stdin for "-".
func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(io.LimitReader(os.Stdin, 16<<20))
	}
	return os.ReadFile(path)
}
