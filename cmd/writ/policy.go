package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/policy"
	"github.com/writ-dev/writ/server"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type decideOpts struct {
	action                       string
	kind, name, args             string
	repo, ref, env, secret, host string
	digest, base, head           string
	paths                        stringList
	via, callRef, run            string
	dryRun, asJSON               bool
}

// exitCode ends a command with a code and no further message: the command
// has already said what happened.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func init() {
	register(&command{
		name: "decide", summary: "ask policy about an action (as the run in WRIT_RUN_DIR, or as a human with --dry-run --run RUN)",
		example: "WRIT_RUN_DIR=~/.local/state/writ/runs/RUN writ decide --kind tool --name shell:test\n" +
			"writ decide --dry-run --run RUN --kind credential --name secret --secret db/password --env production\n" +
			"writ decide --action action.json   # {\"kind\": \"git.push\", \"target\": {\"repo\": \"acme/api\", \"ref\": \"writ/RUN/fix\", \"paths\": [\"src/a.go\"]}}",
		flags: func(fs *flag.FlagSet) any {
			o := &decideOpts{}
			fs.StringVar(&o.action, "action", "", "a JSON file holding the whole action (- for stdin); instead of --kind, --name and the target flags")
			fs.StringVar(&o.kind, "kind", "", "action kind: tool, mcp.call, credential, egress, git.fetch, git.push, merge, build, release, deploy, delegate, review")
			fs.StringVar(&o.name, "name", "", "action name: a tool (shell:test, mcp:everything/echo), host:port for egress, the credential kind")
			fs.StringVar(&o.args, "args", "", "action arguments as a JSON object")
			fs.StringVar(&o.repo, "repo", "", "target repository owner/repo")
			fs.StringVar(&o.ref, "ref", "", "target branch")
			fs.StringVar(&o.env, "env", "", "target environment")
			fs.Var(&o.paths, "path", "a changed path (repeat)")
			fs.StringVar(&o.secret, "secret", "", "target secret name")
			fs.StringVar(&o.host, "host", "", "target host")
			fs.StringVar(&o.digest, "digest", "", "target digest sha256:…")
			fs.StringVar(&o.base, "base", "", "base commit SHA")
			fs.StringVar(&o.head, "head", "", "head commit SHA")
			fs.StringVar(&o.via, "via", "cli", "who asks: cli, exec, hook:claude-code, …")
			fs.StringVar(&o.callRef, "call-ref", "", "the caller's reference of this call (repeats are one decision)")
			fs.BoolVar(&o.dryRun, "dry-run", false, "a human's what-if: decide without entering the run's history")
			fs.StringVar(&o.run, "run", "", "the run a dry run asks about")
			fs.BoolVar(&o.asJSON, "json", false, "print the decision as JSON")
			return o
		},
		run: runDecide,
	})
	register(&command{
		name: "policy test", args: "", summary: "run a policy bundle's Rego tests (the embedded default, or --bundle DIR)",
		example: "writ policy test\nwrit policy test --bundle ./policy --config writ.yaml -v",
		flags: func(fs *flag.FlagSet) any {
			o := &policyOpts{}
			fs.StringVar(&o.bundle, "bundle", "", "bundle directory (default: the bundle writ.yaml names, else the embedded default)")
			fs.StringVar(&o.config, "config", "", "writ.yaml whose profiles, environments and repos are data.writ.config")
			fs.BoolVar(&o.verbose, "v", false, "list every test, not only failures")
			return o
		},
		run: runPolicyTest,
	})
	register(&command{
		name: "policy eval", args: "", summary: "evaluate a policy input document and explain the decision",
		example: "writ policy eval --input input.json\nwrit policy eval --input input.json --bundle ./policy --trace",
		flags: func(fs *flag.FlagSet) any {
			o := &policyOpts{}
			fs.StringVar(&o.bundle, "bundle", "", "bundle directory (default: the bundle writ.yaml names, else the embedded default)")
			fs.StringVar(&o.config, "config", "", "writ.yaml whose profiles, environments and repos are data.writ.config")
			fs.StringVar(&o.input, "input", "", "the input document (policy/CONTRACT.md), - for stdin")
			fs.BoolVar(&o.trace, "trace", false, "print OPA's evaluation trace")
			fs.BoolVar(&o.verbose, "json", false, "print the result as JSON")
			return o
		},
		run: runPolicyEval,
	})
}

func runDecide(ctx context.Context, e *env, opts any, args []string) error {
	o := opts.(*decideOpts)
	if len(args) > 0 {
		return usagef("decide takes no arguments; describe the action with flags or --action FILE")
	}
	var a writ.Action
	if o.action != "" {
		if o.kind != "" || o.name != "" {
			return usagef("give either --action FILE or --kind/--name, not both")
		}
		data, err := readInput(o.action)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, &a); err != nil {
			return fmt.Errorf("%s: not an action object: %w", o.action, err)
		}
	} else {
		if o.kind == "" {
			return usagef("--kind is required (tool, mcp.call, credential, egress, git.fetch, git.push, merge, build, release, deploy, delegate, review)")
		}
		a = writ.Action{Kind: o.kind, Name: o.name, Target: writ.Target{Repo: o.repo, Ref: o.ref, Environment: o.env,
			Paths: o.paths, Secret: o.secret, Host: o.host, Digest: o.digest, Base: o.base, Head: o.head}}
		if o.args != "" {
			a.Args = json.RawMessage(o.args)
		}
	}
	if o.dryRun && o.run == "" {
		return usagef("--dry-run needs --run RUN")
	}
	c, err := clientFor(e)
	if err != nil {
		return err
	}
	d, err := c.Decide(ctx, &client.DecideRequest{Action: a, Via: o.via, CallRef: o.callRef, DryRun: o.dryRun, Run: o.run})
	if err != nil {
		return err
	}
	if o.asJSON {
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

type policyOpts struct {
	bundle, config, input string
	verbose, trace        bool
}

// loadBundle loads the bundle opts name, with the config's data.
func (o *policyOpts) load(ctx context.Context, skipTests bool) (*policy.Bundle, error) {
	cfg := server.DefaultConfig()
	if o.config != "" {
		c, err := server.LoadConfig(o.config)
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	if o.bundle != "" {
		cfg.Policy.Bundle = o.bundle
	}
	fsys, source, err := server.PolicyBundle(cfg)
	if err != nil {
		return nil, err
	}
	return policy.Load(ctx, fsys, policy.LoadOptions{Source: source, Config: server.PolicyData(cfg), Timeout: 10 * time.Second, SkipTests: skipTests})
}

func runPolicyTest(ctx context.Context, e *env, opts any, args []string) error {
	o := opts.(*policyOpts)
	if len(args) > 0 {
		return usagef("policy test takes no arguments; use --bundle DIR")
	}
	b, err := o.load(ctx, false)
	if err != nil {
		var le *policy.LoadError
		if asLoadError(err, &le) && le.Stage == "test" {
			fmt.Fprintf(e.stdout, "FAIL %s\n", le.Source)
			for _, m := range le.Errs {
				fmt.Fprintf(e.stdout, "  %s\n", m)
			}
			return exitCode(exitError)
		}
		return err
	}
	if o.verbose {
		for _, t := range b.Tests {
			fmt.Fprintf(e.stdout, "PASS %s (%s)\n", t.Name, t.Duration.Round(time.Microsecond))
		}
	}
	fmt.Fprintf(e.stdout, "ok %s: %d tests passed · %s\n", b.Source, len(b.Tests), b.Digest)
	return nil
}

func runPolicyEval(ctx context.Context, e *env, opts any, args []string) error {
	o := opts.(*policyOpts)
	if len(args) > 0 || o.input == "" {
		return usagef("policy eval needs --input FILE (a policy input document, see policy/CONTRACT.md)")
	}
	input, err := readInput(o.input)
	if err != nil {
		return err
	}
	if !json.Valid(input) {
		return fmt.Errorf("%s: not valid JSON", o.input)
	}
	b, err := o.load(ctx, true)
	if err != nil {
		return err
	}
	res, err := b.Eval(ctx, input)
	if err != nil {
		fmt.Fprintf(e.stdout, "deny (policy_error): %v\n", err)
		return exitCode(exitDenied)
	}
	verdict, reasons, appr := res.Verdict()
	if o.verbose {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"decision": verdict, "reasons": reasons, "approval": appr, "result": res}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "%s\n", verdict)
		fmt.Fprintf(e.stdout, "  deny reasons: %d, approval reasons: %d, allow: %t (precedence: deny > approval_required > allow)\n",
			len(res.Deny), len(res.Approval), res.Allow)
		for _, r := range res.Deny {
			fmt.Fprintf(e.stdout, "  deny %s: %s\n", r.Code, r.Message)
		}
		for _, r := range res.Approval {
			fmt.Fprintf(e.stdout, "  approval %s: %s (%d from %q)\n", r.Code, r.Message, r.Count, r.Group)
		}
		if verdict == writ.VerdictDeny && len(res.Deny) == 0 {
			fmt.Fprintf(e.stdout, "  %s: %s\n", reasons[0].Code, reasons[0].Message)
		}
		if res.Obligations.MaxTTL > 0 {
			fmt.Fprintf(e.stdout, "  obligation: max credential TTL %s\n", res.Obligations.MaxTTL.D())
		}
		if res.Obligations.Suspend {
			fmt.Fprintf(e.stdout, "  obligation: suspend the run\n")
		}
		for _, a := range res.Alerts {
			fmt.Fprintf(e.stdout, "  alert: %s\n", a)
		}
		fmt.Fprintf(e.stdout, "  policy %s (%s) · data %s\n", b.Digest, b.Source, b.DataDigest)
	}
	if o.trace {
		fmt.Fprintf(e.stdout, "\ntrace:\n")
		if err := b.Trace(ctx, input, e.stdout); err != nil {
			return err
		}
	}
	switch verdict {
	case writ.VerdictAllow:
		return nil
	case writ.VerdictApprovalRequired:
		return exitCode(exitApproval)
	}
	return exitCode(exitDenied)
}

func asLoadError(err error, le **policy.LoadError) bool { return errors.As(err, le) }
