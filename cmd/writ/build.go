package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/writ-dev/writ"
)

// buildCommand is `writ build RUN --recipe NAME`.
type buildCommand struct {
	recipe, repo string
	json         bool
}

func (c *buildCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.recipe, "recipe", "", "the recipe (builds.recipes[].name in writ.yaml)")
	fs.StringVar(&c.repo, "repo", "", "the repository, when the run merged into several")
	fs.BoolVar(&c.json, "json", false, "print JSON, the provenance envelope included")
}

func (c *buildCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 || c.recipe == "" {
		return usagef("build takes one run id and --recipe NAME")
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	b, err := cl.Build(ctx, &writ.BuildRequest{Run: writ.RunID(args[0]), Recipe: c.recipe, Repo: c.repo})
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, b)
	}
	fmt.Fprintf(e.stdout, "build %s of %s@%s (recipe %s): %s\n", b.ID, b.Repo, b.Commit, b.Recipe, b.State)
	for _, out := range b.Outputs {
		fmt.Fprintf(e.stdout, "  %s  %s  (%d bytes)\n", out.Digest, out.Name, out.Size)
	}
	if b.State != writ.BuildSucceeded {
		if b.Log != "" {
			fmt.Fprintf(e.stderr, "%s\n", b.Log)
		}
		return errors.New(b.Failure)
	}
	return nil
}
