package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/writ-dev/writ/server"
)

// initCommand is `writ init [DIR]`: a new installation's files.
type initCommand struct{ opts server.InitOptions }

func (c *initCommand) Flags(fs *flag.FlagSet) {
	o := &c.opts
	fs.StringVar(&o.TrustDomain, "trust-domain", "writ.example.org", "SPIFFE trust domain of this installation")
	fs.StringVar(&o.PublicURL, "public-url", "", "URL agents reach the server at (default http://LISTEN)")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:7300", "address to listen on")
	fs.StringVar(&o.Human, "human", "alice", "the first human signer, in the admins group")
	fs.StringVar(&o.HumanKey, "human-key", "", "the human's public key (authorized_keys line); empty: generate a key pair in DIR")
}

func (c *initCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) > 1 {
		return usagef("init takes at most one directory")
	}
	dir := "."
	if len(args) == 1 {
		dir = args[0]
	}
	res, err := server.Init(dir, c.opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s, keys in %s/keys, example trigger %s\n", res.Config, dir, res.Trigger)
	if res.HumanKeyFile != "" {
		fmt.Fprintf(e.stdout, "wrote the human's signing key %s (keep it private)\n", res.HumanKeyFile)
	}
	fmt.Fprintf(e.stdout, "next: writ token create --bootstrap --config %s --human %s\n      writ serve --config %s\n", res.Config, c.opts.Human, res.Config)
	return nil
}
