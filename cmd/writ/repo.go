package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/writ-dev/writ"
)

// repoAddCommand is `writ repo add OWNER/REPO`: a repository hosted in
// writ's git gateway.
type repoAddCommand struct {
	init          bool
	upstream      string
	defaultBranch string
	asJSON        bool
}

func (c *repoAddCommand) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.init, "init", false, "create a new empty repository")
	fs.StringVar(&c.upstream, "upstream", "", "copy this repository (https://, ssh://, file:// or a path); protected branches are pushed back to it after each merge")
	fs.StringVar(&c.defaultBranch, "default-branch", "", "the branch HEAD names in a new repository (default main)")
	fs.BoolVar(&c.asJSON, "json", false, "print JSON")
}

func (c *repoAddCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("repo add takes one repository, OWNER/REPO")
	}
	if c.init == (c.upstream != "") {
		return usagef("give either --init or --upstream URL")
	}
	if !writ.ValidRepoName(args[0]) {
		return usagef("repository %q: want OWNER/REPO of [a-z0-9._-], not starting with - or . and without ..", args[0])
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	info, err := cl.AddRepo(ctx, &writ.RepoAddRequest{Name: args[0], Init: c.init, Upstream: c.upstream, DefaultBranch: c.defaultBranch})
	if err != nil {
		return err
	}
	if c.asJSON {
		return printJSON(e.stdout, info)
	}
	fmt.Fprintf(e.stdout, "%s hosted at %s (HEAD: %s)\n", info.Name, info.URL, info.Head)
	if info.Upstream != "" {
		fmt.Fprintf(e.stdout, "upstream: %s (merged protected branches are pushed there)\n", info.Upstream)
	}
	return nil
}
