package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"github.com/writ-dev/writ/server"
)

// backupCommand is `writ backup FILE`: a consistent copy of the SQLite
// store, taken while writ serves (docs/operations.md).
type backupCommand struct{ config string }

func (c *backupCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "writ.yaml", "config file")
}

func (c *backupCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("backup takes one argument: the file to write")
	}
	cfg, err := server.LoadConfig(c.config)
	if err != nil {
		return err
	}
	rep, err := server.Backup(ctx, cfg, args[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backup %s: %d log entries, checkpoint %d %s\n", rep.Path, rep.LogSize, rep.Checkpoint.Size, rep.Checkpoint.Root)
	return nil
}

// restoreCommand is `writ restore FILE`: the SQLite store replaced by a
// backup, with writ stopped (docs/operations.md).
type restoreCommand struct{ config string }

func (c *restoreCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "writ.yaml", "config file")
}

func (c *restoreCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("restore takes one argument: the backup file")
	}
	cfg, err := server.LoadConfig(c.config)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep, err := server.Restore(ctx, cfg, args[0], log)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "restored %s: %d log entries (the checkpoint pin had %d)\n", rep.Backup.Path, rep.Backup.LogSize, rep.PinSize)
	if rep.Previous != "" {
		fmt.Fprintf(e.stdout, "the replaced store is kept at %s\n", rep.Previous)
	}
	fmt.Fprintf(e.stdout, "triggers expiring by %s stay refused; start writ serve to revoke credentials the backup does not know\n", rep.TriggerHorizon.Format("2006-01-02T15:04:05Z07:00"))
	return nil
}
