package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/token"
)

// runDelegateCommand is `writ run delegate`: a child of the run in
// WRIT_RUN_DIR, its scope from flags or a request file.
type runDelegateCommand struct {
	request, agent, profile, task, repo, base, runDir string
	tools, paths, hosts, envs, secrets                stringList
	write, asJSON                                     bool
	duration                                          time.Duration
}

func (c *runDelegateCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.request, "request", "", "a JSON file with agent, profile, scope, task and maxDuration (instead of the flags below)")
	fs.StringVar(&c.agent, "agent", "", "the child's agent")
	fs.StringVar(&c.profile, "profile", "", "the child's profile")
	fs.StringVar(&c.task, "task", "", "what the child is for")
	fs.StringVar(&c.repo, "repo", "", "a repository of the parent's scope (owner/repo)")
	fs.StringVar(&c.base, "base", "", "its base branch (default: the parent's)")
	fs.BoolVar(&c.write, "write", false, "the child may push to the repo (only if the parent may)")
	fs.Var(&c.paths, "path", "a path pattern the child may change (repeat; within the parent's)")
	fs.Var(&c.tools, "tool", "a tool the child may use (repeat; within the parent's)")
	fs.Var(&c.hosts, "host", "a host the child may reach (repeat)")
	fs.Var(&c.envs, "env", "an environment (repeat)")
	fs.Var(&c.secrets, "secret", "a secret pattern (repeat)")
	fs.DurationVar(&c.duration, "duration", 0, "how long the child may run (default: until the parent's deadline; never after it)")
	fs.StringVar(&c.runDir, "run-dir", "", "where to keep the child's token and DPoP key")
	fs.BoolVar(&c.asJSON, "json", false, "print the child run as JSON")
}

func (c *runDelegateCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) > 1 {
		return usagef("run delegate takes at most the parent run id")
	}
	dir := e.getenv("WRIT_RUN_DIR")
	if dir == "" {
		return usagef("run delegate acts as the parent run: set WRIT_RUN_DIR to its credentials (its launcher's, with dpop.key)")
	}
	pc, parent, err := runClient(e, dir)
	if err != nil {
		return err
	}
	if len(args) == 1 && args[0] != parent {
		return fmt.Errorf("WRIT_RUN_DIR holds the credentials of run %s, not %s", parent, args[0])
	}
	req := &client.DelegateRequest{}
	if c.request != "" {
		data, err := readInput(c.request)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, req); err != nil {
			return fmt.Errorf("%s: %w", c.request, err)
		}
	} else {
		if c.agent == "" || c.profile == "" || c.repo == "" {
			return usagef("give --agent, --profile and --repo (or --request FILE)")
		}
		base := c.base
		if base == "" {
			p, err := pc.GetRun(ctx, parent)
			if err != nil {
				return err
			}
			for _, r := range p.Scope.Repos {
				if r.Name == c.repo {
					base = r.Base
				}
			}
			if base == "" {
				return fmt.Errorf("repo %s is not in run %s's scope, so a child cannot have it", c.repo, parent)
			}
		}
		req.Agent, req.Profile, req.Task = c.agent, c.profile, c.task
		req.Scope = &writ.Scope{
			Repos: []writ.RepoScope{{Name: c.repo, Base: base, Write: c.write, Paths: c.paths}},
			Tools: nonNil(c.tools), Hosts: nonNil(c.hosts), Environments: nonNil(c.envs), Secrets: nonNil(c.secrets),
			MaxDuration: writ.Duration(c.duration),
		}
	}
	// The child's launcher holds its own DPoP key: the child's token is
	// bound to it, not to the parent's.
	key, err := token.NewDPoPKey()
	if err != nil {
		return err
	}
	jkt, err := token.Thumbprint(&key.PublicKey)
	if err != nil {
		return err
	}
	req.DPoPJKT = jkt
	d, err := pc.Delegate(ctx, parent, req)
	if err != nil {
		return err
	}
	run := &client.Run{Run: d.Run.Run, SPIFFEID: d.Run.SPIFFEID, Token: d.AccessToken, TokenType: d.TokenType}
	childDir, err := saveRunDir(e, c.runDir, pc.BaseURL(), run, key)
	if err != nil {
		return fmt.Errorf("child run %s started, but its credentials could not be saved: %w", run.ID, err)
	}
	if c.asJSON {
		return printJSON(e.stdout, d.Run)
	}
	fmt.Fprintf(e.stdout, "run %s delegated by %s (depth %d)\nidentity %s\ndeadline %s\ncredentials %s\n",
		run.ID, parent, run.Depth, run.SPIFFEID, run.Deadline.Format(time.RFC3339), childDir)
	fmt.Fprintf(e.stdout, "export WRIT_RUN=%s WRIT_RUN_DIR=%s\n", run.ID, childDir)
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
