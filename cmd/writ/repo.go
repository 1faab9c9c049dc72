package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/writ-dev/writ"
)

type repoAddOpts struct {
	init          bool
	upstream      string
	defaultBranch string
	asJSON        bool
}

type mergeOpts struct {
	repo, branch, into string
	asJSON             bool
}

func init() {
	register(&command{
		name: "repo add", args: "OWNER/REPO", summary: "host a repository in writ's git gateway (admins): a new empty one, or a copy of an upstream it then mirrors merges to",
		example: "writ repo add acme/api --init\n" +
			"writ repo add acme/api --upstream https://git.example.org/acme/api.git\n" +
			"git clone $WRIT_URL/git/acme/api.git   # humans: user anything, password = an API token",
		flags: func(fs *flag.FlagSet) any {
			o := &repoAddOpts{}
			fs.BoolVar(&o.init, "init", false, "create a new empty repository")
			fs.StringVar(&o.upstream, "upstream", "", "copy this repository (https://, ssh://, file:// or a path); protected branches are pushed back to it after each merge")
			fs.StringVar(&o.defaultBranch, "default-branch", "", "the branch HEAD names in a new repository (default main)")
			fs.BoolVar(&o.asJSON, "json", false, "print JSON")
			return o
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			o := opts.(*repoAddOpts)
			if len(args) != 1 {
				return usagef("repo add takes one repository, OWNER/REPO")
			}
			if o.init == (o.upstream != "") {
				return usagef("give either --init or --upstream URL")
			}
			if !writ.ValidRepoName(args[0]) {
				return usagef("repository %q: want OWNER/REPO of [a-z0-9._-], not starting with - or . and without ..", args[0])
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			info, err := c.AddRepo(ctx, &writ.RepoAddRequest{Name: args[0], Init: o.init, Upstream: o.upstream, DefaultBranch: o.defaultBranch})
			if err != nil {
				return err
			}
			if o.asJSON {
				return printJSON(e.stdout, info)
			}
			fmt.Fprintf(e.stdout, "%s hosted at %s (HEAD: %s)\n", info.Name, info.URL, info.Head)
			if info.Upstream != "" {
				fmt.Fprintf(e.stdout, "upstream: %s (merged protected branches are pushed there)\n", info.Upstream)
			}
			return nil
		},
	})
	register(&command{
		name: "merge", args: "RUN", summary: "merge a run's branch into a protected branch by the SHA a human approved (asks for the approval the first time: exit 4)",
		example: "writ merge 01jd0000000000000000000000                  # exit 4: approval apr_… is pending\n" +
			"writ approvals approve apr_… --ssh-key ~/.ssh/id_ed25519    # another maintainer\n" +
			"writ merge 01jd0000000000000000000000                  # fast-forwards main to exactly the approved head\n" +
			"writ merge 01jd0000000000000000000000 --repo acme/api --branch fix --into release/1.2",
		flags: func(fs *flag.FlagSet) any {
			o := &mergeOpts{}
			fs.StringVar(&o.repo, "repo", "", "the repository, OWNER/REPO (default: the run's only writable repository)")
			fs.StringVar(&o.branch, "branch", "", "the run's branch, writ/RUN/NAME or NAME (default: the run's only branch)")
			fs.StringVar(&o.into, "into", "", "the branch to merge into (default: the trigger's base)")
			fs.BoolVar(&o.asJSON, "json", false, "print JSON")
			return o
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			o := opts.(*mergeOpts)
			if len(args) != 1 {
				return usagef("merge takes one run id")
			}
			id, err := writ.ParseRunID(args[0])
			if err != nil {
				return usagef("%q is not a run id", args[0])
			}
			c, err := clientFor(e)
			if err != nil {
				return err
			}
			repo := o.repo
			if repo == "" {
				run, err := c.GetRun(ctx, string(id))
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
			res, err := c.Merge(ctx, repo, &writ.MergeRequest{Run: id, Branch: o.branch, Into: o.into})
			if err != nil {
				return err
			}
			if o.asJSON {
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
		},
	})
}

func short(sha string) string { return sha[:min(len(sha), 12)] }
