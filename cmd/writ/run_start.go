package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/writ-dev/writ/token"
)

// runStartCommand is `writ run start`: a run from a signed trigger, or
// with --delegate-from a child of a run (as `writ run delegate`).
type runStartCommand struct {
	trigger, runDir, delegateFrom, request string
	json                                   bool
}

func (c *runStartCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.trigger, "trigger", "", "signed trigger file (DSSE envelope or payload+sshsig JSON); - for stdin")
	fs.StringVar(&c.runDir, "run-dir", "", "where to keep the run's token and DPoP key (default $XDG_STATE_HOME/writ/runs/RUN)")
	fs.BoolVar(&c.json, "json", false, "print the whole run as JSON (without its token)")
	fs.StringVar(&c.delegateFrom, "delegate-from", "", "start a child of this run instead (WRIT_RUN_DIR holds its credentials); with --request FILE")
	fs.StringVar(&c.request, "request", "", "with --delegate-from: the child's agent, profile, scope, task (JSON); see writ run delegate")
}

func (c *runStartCommand) Run(ctx context.Context, e *env, args []string) error {
	if c.delegateFrom != "" {
		if c.trigger != "" || c.request == "" || len(args) > 0 {
			return usagef("run start --delegate-from RUN needs --request FILE, and no --trigger")
		}
		d := &runDelegateCommand{request: c.request, runDir: c.runDir, asJSON: c.json}
		return d.Run(ctx, e, []string{c.delegateFrom})
	}
	if c.trigger == "" || len(args) > 0 {
		return usagef("run start needs --trigger FILE (or --delegate-from RUN) and no arguments")
	}
	body, err := readInput(c.trigger)
	if err != nil {
		return err
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	// A key per run: the run's first token is bound to it (DPoP),
	// so the token alone is useless to whoever copies it.
	key, err := token.NewDPoPKey()
	if err != nil {
		return err
	}
	run, err := cl.StartRun(ctx, body, key)
	if err != nil {
		return err
	}
	dir, err := saveRunDir(e, c.runDir, cl.BaseURL(), run, key)
	if err != nil {
		return fmt.Errorf("run %s started, but its credentials could not be saved: %w", run.ID, err)
	}
	if c.json {
		run.Token = ""
		return printJSON(e.stdout, run)
	}
	fmt.Fprintf(e.stdout, "run %s started\nidentity %s\ndeadline %s\ncredentials %s (DPoP-bound token, key 0600)\n", run.ID, run.SPIFFEID, run.Deadline.Format(time.RFC3339), dir)
	fmt.Fprintf(e.stdout, "export WRIT_RUN=%s WRIT_RUN_DIR=%s\n", run.ID, dir)
	return nil
}
