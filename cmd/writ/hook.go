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
	"github.com/writ-dev/writ/hook"
)

func init() {
	for _, agent := range []string{hook.ClaudeCode, hook.Codex, hook.Copilot} {
		ex := map[string]string{
			hook.ClaudeCode: `.claude/settings.json: {"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [{"type": "command", "command": "writ hook claude-code"}]}],
                        "PostToolUse": [{"matcher": "*", "hooks": [{"type": "command", "command": "writ hook claude-code"}]}]}}`,
			hook.Codex:   `~/.codex/hooks.json: {"PreToolUse": [{"hooks": [{"type": "command", "command": "writ hook codex"}]}]}`,
			hook.Copilot: `.github/hooks/writ.json: {"version": 1, "hooks": {"preToolUse": [{"type": "command", "bash": "writ hook copilot"}]}}`,
		}[agent]
		register(&command{
			name: "hook " + agent, summary: "answer " + agent + "'s tool-call hook from writ's policy (reads the hook JSON on stdin; WRIT_RUN_DIR names the run)",
			example: ex,
			run: func(ctx context.Context, e *env, _ any, args []string) error {
				if len(args) > 0 {
					return usagef("hook %s takes no arguments; it reads the hook JSON on stdin", agent)
				}
				return runHook(ctx, e, agent)
			},
		})
	}
	register(&command{
		name: "exec", args: "--tool NAME -- CMD…", summary: "ask policy about exec:NAME, run CMD if allowed, record its outcome (exit 3 denied, 4 approval pending)",
		example: "writ exec --tool test -- go test ./...",
		flags:   func(fs *flag.FlagSet) any { return fs.String("tool", "", "the tool name: CMD runs as exec:NAME") },
		run:     runExec,
	})
}

// runHook answers one hook call. It fails closed in each agent's
// protocol: exit 2 with a message for Claude Code and Codex (exit 1 would
// let the tool run), a deny answer for Copilot (which honours only deny).
func runHook(ctx context.Context, e *env, agent string) error {
	consequence := " — the tool call is blocked"
	fail := func(err error) error {
		msg := "writ hook: " + err.Error() + consequence
		if agent == hook.Copilot {
			if werr := hook.Write(e.stdout, agent, hook.Answer{Reason: msg}); werr == nil {
				return nil
			}
		}
		fmt.Fprintln(e.stderr, msg)
		return exitCode(exitUsage)
	}
	if e.stdin == nil {
		return fail(errors.New("no hook input on stdin"))
	}
	c, err := hook.Parse(agent, e.stdin)
	if err != nil {
		return fail(err)
	}
	if c.Event == hook.PostToolUse {
		consequence = " — the tool's outcome was not recorded"
	}
	dir := e.getenv("WRIT_RUN_DIR")
	if dir == "" {
		return fail(errors.New("WRIT_RUN_DIR is not set: run the agent under `writ run`, or point WRIT_RUN_DIR at a run's credentials"))
	}
	rc, _, err := runClient(e, dir)
	if err != nil {
		return fail(fmt.Errorf("no run credentials: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := hook.Handle(ctx, hookDecider{rc}, c, e.stdout); err != nil {
		return fail(err)
	}
	return nil
}

// hookDecider asks writ's API.
type hookDecider struct{ c *client.Client }

func (d hookDecider) Decide(ctx context.Context, a writ.Action, via, callRef string) (string, string, []writ.Reason, *writ.ApprovalRef, error) {
	dec, err := d.c.Decide(ctx, &client.DecideRequest{Action: a, Via: via, CallRef: callRef})
	if err != nil {
		return "", "", nil, nil, err
	}
	return dec.Decision, dec.ID, dec.Reasons, dec.Approval, nil
}

func (d hookDecider) Outcome(ctx context.Context, via, callRef string, exitCode *int, durationMS int64, failed bool) error {
	o := &client.Outcome{Via: via, CallRef: callRef, ExitCode: exitCode, DurationMS: durationMS}
	if failed {
		o.Error = "the agent reported the tool call failed"
	}
	err := d.c.ReportOutcome(ctx, "", o)
	switch writ.ErrorCode(err) {
	case "outcome_recorded", "not_allowed", "decision_not_found":
		// A repeated PostToolUse, a tool the hook denied that ran anyway
		// (the agent ignored the answer: the gateways still enforce), or a
		// call decided before the run's hook was wired: nothing to record.
		return nil
	}
	return err
}

// runExec decides exec:NAME as the run in WRIT_RUN_DIR (or a human's dry
// run is not possible here: exec acts), runs CMD with the caller's stdio,
// and records the outcome. CMD's exit status is the command's.
func runExec(ctx context.Context, e *env, opts any, args []string) error {
	name := *opts.(*string)
	if name == "" || len(args) == 0 {
		return usagef("exec needs --tool NAME and a command after --")
	}
	dir := e.getenv("WRIT_RUN_DIR")
	if dir == "" {
		return errors.New("WRIT_RUN_DIR is not set: writ exec acts as a run")
	}
	c, _, err := runClient(e, dir)
	if err != nil {
		return err
	}
	dec, err := c.Decide(ctx, &client.DecideRequest{Action: writ.Action{Kind: writ.ActionTool, Name: "exec:" + name,
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
	if err := c.ReportOutcome(ctx, dec.ID, o); err != nil {
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
