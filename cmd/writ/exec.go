package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
)

// execCommand is `writ exec --tool NAME -- CMD…`: it decides exec:NAME
// as the run in WRIT_RUN_DIR (or a human's dry
// run is not possible here: exec acts), runs CMD with the caller's stdio,
// and records the outcome. CMD's exit status is the command's.
type execCommand struct{ tool string }

func (c *execCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.tool, "tool", "", "the tool name: CMD runs as exec:NAME")
}

func (c *execCommand) Run(ctx context.Context, e *env, args []string) error {
	name := c.tool
	if name == "" || len(args) == 0 {
		return usagef("exec needs --tool NAME and a command after --")
	}
	dir := e.getenv("WRIT_RUN_DIR")
	if dir == "" {
		return errors.New("WRIT_RUN_DIR is not set: writ exec acts as a run")
	}
	cl, _, err := runClient(e, dir)
	if err != nil {
		return err
	}
	dec, err := cl.Decide(ctx, &client.DecideRequest{Action: writ.Action{Kind: writ.ActionTool, Name: "exec:" + name,
		Args: argsJSON(args)}, Via: "exec"})
	if err != nil {
		return err
	}
	switch dec.Decision {
	case writ.VerdictDeny:
		printDecision(e.stderr, dec)
		return exitCode(exitDenied)
	case writ.VerdictApprovalRequired:
		printDecision(e.stderr, dec)
		return exitCode(exitApproval)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = e.stdin, e.stdout, e.stderr
	if cmd.Stdin == nil {
		cmd.Stdin = os.Stdin
	}
	start := time.Now()
	runErr := cmd.Run()
	dur := time.Since(start)
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(runErr, &ee):
		code = ee.ExitCode()
	case runErr != nil:
		code = 127
	}
	o := &client.Outcome{ExitCode: &code, DurationMS: dur.Milliseconds()}
	if runErr != nil && ee == nil {
		o.Error = runErr.Error()
	}
	if err := cl.ReportOutcome(ctx, dec.ID, o); err != nil {
		fmt.Fprintf(e.stderr, "writ exec: the outcome was not recorded: %v\n", err)
	}
	if runErr != nil && ee == nil {
		return fmt.Errorf("run %s: %w", args[0], runErr)
	}
	if code != 0 {
		return exitCode(code)
	}
	return nil
}

// argsJSON records a command line as the action's arguments.
func argsJSON(args []string) []byte {
	b, _ := json.Marshal(map[string][]string{"argv": args})
	return b
}
