package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/writ-dev/writ/server"
)

func init() {
	register(&command{
		name: "version", summary: "print writ's version", example: "writ version",
		run: func(ctx context.Context, e *env, _ any, args []string) error {
			fmt.Fprintf(e.stdout, "writ %s (%s %s/%s)\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	})
	register(&command{
		name: "init", args: "[DIR]", summary: "write a commented writ.yaml, the three server keys and an example trigger",
		example: "writ init --trust-domain writ.example.org --human alice /etc/writ",
		flags: func(fs *flag.FlagSet) any {
			o := &server.InitOptions{}
			fs.StringVar(&o.TrustDomain, "trust-domain", "writ.example.org", "SPIFFE trust domain of this installation")
			fs.StringVar(&o.PublicURL, "public-url", "", "URL agents reach the server at (default http://LISTEN)")
			fs.StringVar(&o.Listen, "listen", "127.0.0.1:7300", "address to listen on")
			fs.StringVar(&o.Human, "human", "alice", "the first human signer, in the admins group")
			fs.StringVar(&o.HumanKey, "human-key", "", "the human's public key (authorized_keys line); empty: generate a key pair in DIR")
			return o
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			if len(args) > 1 {
				return usagef("init takes at most one directory")
			}
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			res, err := server.Init(dir, *opts.(*server.InitOptions))
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "wrote %s, keys in %s/keys, example trigger %s\n", res.Config, dir, res.Trigger)
			if res.HumanKeyFile != "" {
				fmt.Fprintf(e.stdout, "wrote the human's signing key %s (keep it private)\n", res.HumanKeyFile)
			}
			fmt.Fprintf(e.stdout, "next: writ token create --bootstrap --config %s --human %s\n      writ serve --config %s\n", res.Config, opts.(*server.InitOptions).Human, res.Config)
			return nil
		},
	})
	register(&command{
		name: "migrate", summary: "apply pending store migrations",
		example: "writ migrate --config /etc/writ/writ.yaml",
		flags: func(fs *flag.FlagSet) any {
			return fs.String("config", "writ.yaml", "config file")
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			cfg, err := server.LoadConfig(*opts.(*string))
			if err != nil {
				return err
			}
			if err := server.Migrate(ctx, cfg); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "store %s is up to date\n", cfg.Store)
			return nil
		},
	})
	register(&command{
		name: "serve", summary: "run the writ server",
		example: "writ serve --config /etc/writ/writ.yaml\nwrit serve --dev            # throwaway installation, prints what to try next",
		flags: func(fs *flag.FlagSet) any {
			o := &serveOpts{}
			fs.StringVar(&o.config, "config", "", "config file (default writ.yaml unless --dev)")
			fs.BoolVar(&o.dev, "dev", false, "development mode: temporary data dir, generated keys, a dev human with an admin token")
			fs.StringVar(&o.devDir, "dev-dir", "", "with --dev: use this directory instead of a temporary one")
			fs.StringVar(&o.listen, "listen", "", "override the listen address (127.0.0.1:0 picks a free port)")
			fs.StringVar(&o.logFormat, "log-format", "", "override log.format: text or json")
			fs.StringVar(&o.logLevel, "log-level", "", "override log.level: debug, info, warn, error")
			return o
		},
		run: runServe,
	})
}

type serveOpts struct {
	config, devDir, listen, logFormat, logLevel string
	dev                                         bool
}

func runServe(ctx context.Context, e *env, opts any, args []string) error {
	o := opts.(*serveOpts)
	if len(args) > 0 {
		return usagef("serve takes no arguments")
	}
	var cfg server.Config
	var dev *server.DevEnv
	var err error
	switch {
	case o.dev && o.config != "":
		return usagef("--dev and --config exclude each other")
	case o.dev:
		listen := o.listen
		if listen == "" {
			listen = "127.0.0.1:7300"
		}
		cfg, dev, err = server.PrepareDev(o.devDir, listen)
	default:
		if o.config == "" {
			o.config = "writ.yaml"
		}
		cfg, err = server.LoadConfig(o.config)
	}
	if err != nil {
		return err
	}
	if o.listen != "" {
		cfg.Listen = o.listen
	}
	if o.logFormat != "" {
		cfg.LogFormat = o.logFormat
	}
	if o.logLevel != "" {
		cfg.LogLevel = o.logLevel
	}
	log, err := server.NewLogger(e.stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	srv, err := server.New(ctx, cfg, server.Options{Logger: log, Sandbox: buildSandbox()})
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

func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}
