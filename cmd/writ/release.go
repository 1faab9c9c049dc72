package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/writ-dev/writ"
)

// releaseCommand is `writ release ARTIFACT --env NAME`: the release gate.
type releaseCommand struct {
	env, run string
	json     bool
}

func (c *releaseCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.env, "env", "", "the environment to release to")
	fs.StringVar(&c.run, "run", "", "the release run (default $WRIT_RUN)")
	fs.BoolVar(&c.json, "json", false, "print JSON, the release attestation included")
}

func (c *releaseCommand) Run(ctx context.Context, e *env, args []string) error {
	if c.run == "" {
		c.run = e.getenv("WRIT_RUN")
	}
	if len(args) != 1 || c.env == "" || c.run == "" {
		return usagef("release takes one artifact digest, --env NAME and --run RUN (or WRIT_RUN)")
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	r, err := cl.Release(ctx, &writ.ReleaseRequest{Run: writ.RunID(c.run), Artifact: args[0], Environment: c.env})
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, r)
	}
	fmt.Fprintf(e.stdout, "released %s to %s (release %s)\n  built from %s@%s (build event %s)\n  decision %s, approval %s\n",
		r.Artifact, r.Environment, r.ID, r.Repo, r.Commit, r.Build, r.Decision, r.Approval)
	return nil
}
