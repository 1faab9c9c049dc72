package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/writ-dev/writ/server"
)

// migrateCommand is `writ migrate`: the store's pending migrations.
type migrateCommand struct{ config string }

func (c *migrateCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "writ.yaml", "config file")
}

func (c *migrateCommand) Run(ctx context.Context, e *env, args []string) error {
	cfg, err := server.LoadConfig(c.config)
	if err != nil {
		return err
	}
	if err := server.Migrate(ctx, cfg); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "store %s is up to date\n", cfg.Store)
	return nil
}
