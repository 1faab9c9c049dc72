package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/writ-dev/writ"
)

// mergeCommand is `writ merge RUN`: a run's branch merged by the SHA a
// human approved.
type mergeCommand struct {
	repo, branch, into string
	asJSON             bool
}

func (c *mergeCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.repo, "repo", "", "the repository, OWNER/REPO (default: the run's only writable repository)")
	fs.StringVar(&c.branch, "branch", "", "the run's branch, writ/RUN/NAME or NAME (default: the run's only branch)")
	fs.StringVar(&c.into, "into", "", "the branch to merge into (default: the trigger's base)")
	fs.BoolVar(&c.asJSON, "json", false, "print JSON")
}

func (c *mergeCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("merge takes one run id")
	}
	id, err := writ.ParseRunID(args[0])
	if err != nil {
		return usagef("%q is not a run id", args[0])
	}
	cl, err := clientFor(e)
	if err != nil {
		return err
	}
	repo := c.repo
	if repo == "" {
		run, err := cl.GetRun(ctx, string(id))
		if err != nil {
			return err
		}
		var writable []string
		for _, r := range run.Scope.Repos {
			if r.Write {
				writable = append(writable, r.Name)
			}
		}
		if len(writable) != 1 {
			return usagef("run %s may write %d repositories (%v): say which with --repo", id, len(writable), writable)
		}
		repo = writable[0]
	}
	res, err := cl.Merge(ctx, repo, &writ.MergeRequest{Run: id, Branch: c.branch, Into: c.into})
	if err != nil {
		return err
	}
	if c.asJSON {
		return printJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "merged %s into %s of %s: %s -> %s (approval %s)\n", res.Branch, res.Into, res.Repo, short(res.Base), short(res.Head), res.Approval)
	switch {
	case res.Mirrored:
		fmt.Fprintf(e.stdout, "mirrored to %s\n", res.Upstream)
	case res.MirrorError != "":
		fmt.Fprintf(e.stderr, "writ: warning: the merge is done in writ, but the upstream %s did not take it: %s\n", res.Upstream, res.MirrorError)
		return exitCode(exitError)
	}
	return nil
}

func short(sha string) string { return sha[:min(len(sha), 12)] }
