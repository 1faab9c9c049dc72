package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/hook"
)

// hookCommand is `writ hook AGENT`: agent is hook.ClaudeCode, hook.Codex
// or hook.Copilot.
type hookCommand struct {
	noFlags
	agent string
}

func (c *hookCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		return usagef("hook %s takes no arguments; it reads the hook JSON on stdin", c.agent)
	}
	return runHook(ctx, e, c.agent)
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
