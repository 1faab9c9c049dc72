package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/policy"
	"github.com/writ-dev/writ/server"
)

// policyBundle is the bundle the policy commands load: --bundle, else the
// one --config names, else the embedded default.
type policyBundle struct {
	bundle, config string
}

func (o *policyBundle) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.bundle, "bundle", "", "bundle directory (default: the bundle writ.yaml names, else the embedded default)")
	fs.StringVar(&o.config, "config", "", "writ.yaml whose profiles, environments and repos are data.writ.config")
}

// load loads the bundle o names, with the config's data.
func (o *policyBundle) load(ctx context.Context, skipTests bool) (*policy.Bundle, error) {
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

// policyTestCommand is `writ policy test`: a bundle's Rego tests.
type policyTestCommand struct {
	policyBundle
	verbose bool
}

func (c *policyTestCommand) Flags(fs *flag.FlagSet) {
	c.policyBundle.flags(fs)
	fs.BoolVar(&c.verbose, "v", false, "list every test, not only failures")
}

func (c *policyTestCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		return usagef("policy test takes no arguments; use --bundle DIR")
	}
	b, err := c.load(ctx, false)
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
	if c.verbose {
		for _, t := range b.Tests {
			fmt.Fprintf(e.stdout, "PASS %s (%s)\n", t.Name, t.Duration.Round(time.Microsecond))
		}
	}
	fmt.Fprintf(e.stdout, "ok %s: %d tests passed · %s\n", b.Source, len(b.Tests), b.Digest)
	return nil
}

// policyEvalCommand is `writ policy eval`: a policy input document's
// decision, explained.
type policyEvalCommand struct {
	policyBundle
	input       string
	trace, json bool
}

func (c *policyEvalCommand) Flags(fs *flag.FlagSet) {
	c.policyBundle.flags(fs)
	fs.StringVar(&c.input, "input", "", "the input document (policy/CONTRACT.md), - for stdin")
	fs.BoolVar(&c.trace, "trace", false, "print OPA's evaluation trace")
	fs.BoolVar(&c.json, "json", false, "print the result as JSON")
}

func (c *policyEvalCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 || c.input == "" {
		return usagef("policy eval needs --input FILE (a policy input document, see policy/CONTRACT.md)")
	}
	input, err := readInput(c.input)
	if err != nil {
		return err
	}
	if !json.Valid(input) {
		return fmt.Errorf("%s: not valid JSON", c.input)
	}
	b, err := c.load(ctx, true)
	if err != nil {
		return err
	}
	res, err := b.Eval(ctx, input)
	if err != nil {
		fmt.Fprintf(e.stdout, "deny (policy_error): %v\n", err)
		return exitCode(exitDenied)
	}
	verdict, reasons, appr := res.Verdict()
	if c.json {
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
	if c.trace {
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
