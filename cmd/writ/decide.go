package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
)

// decideCommand is `writ decide`: policy's answer about an action, as the
// run in WRIT_RUN_DIR or, with --dry-run, as a human's what-if.
type decideCommand struct {
	action                       string
	kind, name, args             string
	repo, ref, env, secret, host string
	digest, base, head           string
	paths                        stringList
	via, callRef, run            string
	dryRun, asJSON               bool
}

func (c *decideCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.action, "action", "", "a JSON file holding the whole action (- for stdin); instead of --kind, --name and the target flags")
	fs.StringVar(&c.kind, "kind", "", "action kind: tool, mcp.call, credential, egress, git.fetch, git.push, merge, build, release, deploy, delegate, review")
	fs.StringVar(&c.name, "name", "", "action name: a tool (shell:test, mcp:everything/echo), host:port for egress, the credential kind")
	fs.StringVar(&c.args, "args", "", "action arguments as a JSON object")
	fs.StringVar(&c.repo, "repo", "", "target repository owner/repo")
	fs.StringVar(&c.ref, "ref", "", "target branch")
	fs.StringVar(&c.env, "env", "", "target environment")
	fs.Var(&c.paths, "path", "a changed path (repeat)")
	fs.StringVar(&c.secret, "secret", "", "target secret name")
	fs.StringVar(&c.host, "host", "", "target host")
	fs.StringVar(&c.digest, "digest", "", "target digest sha256:…")
	fs.StringVar(&c.base, "base", "", "base commit SHA")
	fs.StringVar(&c.head, "head", "", "head commit SHA")
	fs.StringVar(&c.via, "via", "cli", "who asks: cli, exec, hook:claude-code, …")
	fs.StringVar(&c.callRef, "call-ref", "", "the caller's reference of this call (repeats are one decision)")
	fs.BoolVar(&c.dryRun, "dry-run", false, "a human's what-if: decide without entering the run's history")
	fs.StringVar(&c.run, "run", "", "the run a dry run asks about")
	fs.BoolVar(&c.asJSON, "json", false, "print the decision as JSON")
}

func (c *decideCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		return usagef("decide takes no arguments; describe the action with flags or --action FILE")
	}
	var a writ.Action
	if c.action != "" {
		if c.kind != "" || c.name != "" {
			return usagef("give either --action FILE or --kind/--name, not both")
		}
		data, err := readInput(c.action)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, &a); err != nil {
			return fmt.Errorf("%s: not an action object: %w", c.action, err)
		}
	} else {
		if c.kind == "" {
			return usagef("--kind is required (tool, mcp.call, credential, egress, git.fetch, git.push, merge, build, release, deploy, delegate, review)")
		}
		a = writ.Action{Kind: c.kind, Name: c.name, Target: writ.Target{Repo: c.repo, Ref: c.ref, Environment: c.env,
			Paths: c.paths, Secret: c.secret, Host: c.host, Digest: c.digest, Base: c.base, Head: c.head}}
		if c.args != "" {
			a.Args = json.RawMessage(c.args)
		}
	}
	if c.dryRun && c.run == "" {
		return usagef("--dry-run needs --run RUN")
	}
	cl, err := clientFor(e)
	if err != nil {
		return err
	}
	d, err := cl.Decide(ctx, &client.DecideRequest{Action: a, Via: c.via, CallRef: c.callRef, DryRun: c.dryRun, Run: c.run})
	if err != nil {
		return err
	}
	if c.asJSON {
		if err := printJSON(e.stdout, d); err != nil {
			return err
		}
	} else {
		printDecision(e.stdout, d)
	}
	switch d.Decision {
	case writ.VerdictAllow:
		return nil
	case writ.VerdictApprovalRequired:
		return exitCode(exitApproval)
	}
	return exitCode(exitDenied)
}

func printDecision(w io.Writer, d *client.Decision) {
	dry := ""
	if d.DryRun {
		dry = " (dry run)"
	}
	fmt.Fprintf(w, "%s %s%s\n", d.Decision, d.ID, dry)
	for _, r := range d.Reasons {
		fmt.Fprintf(w, "  %s: %s\n", r.Code, r.Message)
	}
	if a := d.Approval; a != nil {
		if a.ID != "" {
			fmt.Fprintf(w, "  approval %s: %d approver(s) from group %q; see `writ approvals show %s`\n", a.ID, a.Count, a.Group, a.ID)
		} else {
			fmt.Fprintf(w, "  would need %d approver(s) from group %q\n", a.Count, a.Group)
		}
	}
	if d.Obligations.MaxTTL > 0 {
		fmt.Fprintf(w, "  max credential TTL %s\n", d.Obligations.MaxTTL.D())
	}
	if d.Obligations.Suspend {
		fmt.Fprintf(w, "  the run is suspended: a human resumes it with `writ run resume` or kills it\n")
	}
	fmt.Fprintf(w, "  run %s · policy %s\n", d.RunState, d.PolicyDigest)
}
