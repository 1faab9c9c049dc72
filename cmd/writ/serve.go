package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/writ-dev/writ/builder"
	"github.com/writ-dev/writ/launch"
	"github.com/writ-dev/writ/server"
)

// serveCommand is `writ serve`: the server, from a config file or, with
// --dev, a throwaway installation.
type serveCommand struct {
	config, devDir, listen, logFormat, logLevel string
	dev, acceptRollback                         bool
}

func (c *serveCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "config file (default writ.yaml unless --dev)")
	fs.BoolVar(&c.dev, "dev", false, "development mode: temporary data dir, generated keys, a dev human with an admin token")
	fs.StringVar(&c.devDir, "dev-dir", "", "with --dev: use this directory instead of a temporary one")
	fs.StringVar(&c.listen, "listen", "", "override the listen address (127.0.0.1:0 picks a free port)")
	fs.StringVar(&c.logFormat, "log-format", "", "override log.format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "", "override log.level: debug, info, warn, error")
	fs.BoolVar(&c.acceptRollback, "accept-rollback", false, "start on a store the checkpoint pin refuses (rolled back, restored by hand): records an alert and resets the pin")
}

func (c *serveCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		return usagef("serve takes no arguments")
	}
	var cfg server.Config
	var dev *server.DevEnv
	var err error
	switch {
	case c.dev && c.config != "":
		return usagef("--dev and --config exclude each other")
	case c.dev:
		listen := c.listen
		if listen == "" {
			listen = "127.0.0.1:7300"
		}
		cfg, dev, err = server.PrepareDev(c.devDir, listen)
	default:
		if c.config == "" {
			c.config = "writ.yaml"
		}
		cfg, err = server.LoadConfig(c.config)
	}
	if err != nil {
		return err
	}
	if c.listen != "" {
		cfg.Listen = c.listen
	}
	if c.logFormat != "" {
		cfg.LogFormat = c.logFormat
	}
	if c.logLevel != "" {
		cfg.LogLevel = c.logLevel
	}
	log, err := server.NewLogger(e.stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	srv, err := server.New(ctx, cfg, server.Options{Logger: log, Sandbox: buildSandbox(), AcceptRollback: c.acceptRollback})
	if err != nil {
		return err
	}
	url, err := srv.Listen()
	if err != nil {
		srv.Close()
		return err
	}
	if dev != nil {
		if err := srv.FinishDev(ctx, dev, url); err != nil {
			srv.Close()
			return err
		}
		fmt.Fprint(e.stdout, dev.NextSteps())
	}
	// SIGHUP re-reads the policy bundle directory now; a bundle that does
	// not compile or fails its tests is refused and logged.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = srv.ReloadPolicy(ctx)
			}
		}
	}()
	return srv.Run(ctx)
}

// buildSandbox confines writ serve's build recipes with the Landlock
// helper of this binary, the one `writ run` uses.
func buildSandbox() builder.Sandbox {
	self, err := os.Executable()
	if err != nil {
		return nil
	}
	return func(ctx context.Context, argv, env []string, dir string, ports []uint16) (*exec.Cmd, func(), error) {
		return launch.SandboxCommand(ctx, self, argv, env, dir, ports)
	}
}
