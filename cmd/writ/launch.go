package main

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/launch"
	"github.com/writ-dev/writ/token"
)

// sandboxFlag is --sandbox: on by default where Landlock can enforce it;
// set explicitly to true where it cannot, the launcher refuses to start.
type sandboxFlag struct {
	on, set bool
}

func (f *sandboxFlag) String() string   { return strconv.FormatBool(f.on) }
func (f *sandboxFlag) IsBoolFlag() bool { return true }
func (f *sandboxFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	f.on, f.set = v, true
	return nil
}

type launchOpts struct {
	trigger, delegateFrom, request, workspace string
	sandbox                                   sandboxFlag
	explain                                   bool
	grace                                     time.Duration
	ro                                        listFlag
}

func init() {
	register(&command{
		name: "run", args: "-- CMD [ARG…]",
		summary: "run an agent (CMD) under a new run: sandbox, egress proxy, heartbeats, watchdog",
		example: "writ run --trigger t.signed.json --workspace ~/src/api -- claude -p \"fix the flaky test\"\n" +
			"writ run --explain-sandbox\n" +
			"exit status: CMD's own; 125 writ failed before CMD started (or the sandbox could not be applied),\n" +
			"126 CMD could not be executed, 127 CMD not found, 128+N CMD died of signal N (143/137: the watchdog)",
		flags: func(fs *flag.FlagSet) any {
			o := &launchOpts{}
			o.sandbox.on = launch.ABI() >= launch.MinABI
			fs.StringVar(&o.trigger, "trigger", "", "signed trigger file (the run's credential); - for stdin")
			fs.StringVar(&o.delegateFrom, "delegate-from", "", "start a child of this run instead (WRIT_RUN_DIR holds its launcher's credentials), with --request FILE")
			fs.StringVar(&o.request, "request", "", "with --delegate-from: the child's agent, profile, scope and task (JSON, as writ run delegate)")
			fs.StringVar(&o.workspace, "workspace", "", "CMD's working directory, the only one it may write (default: the current directory)")
			fs.Var(&o.sandbox, "sandbox", "run CMD in the Landlock sandbox (default: on where the kernel supports it)")
			fs.BoolVar(&o.explain, "explain-sandbox", false, "print what the sandbox enforces and what it does not, and exit")
			fs.DurationVar(&o.grace, "grace", 10*time.Second, "time between SIGTERM and SIGKILL when the watchdog stops CMD")
			fs.Var(&o.ro, "ro", "another directory CMD may read (repeatable), such as a toolchain outside /usr")
			return o
		},
		run: runLaunch,
	})
}

// selfPath is the writ binary by an absolute path CMD can run: the "writ"
// on PATH when it is this very executable (a test harness's link), else
// the executable.
func selfPath() string {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	if filepath.Base(exe) == "writ" {
		return exe
	}
	if p, err := exec.LookPath("writ"); err == nil {
		a, e1 := os.Stat(p)
		b, e2 := os.Stat(exe)
		if e1 == nil && e2 == nil && os.SameFile(a, b) {
			if abs, err := filepath.Abs(p); err == nil {
				return abs
			}
		}
	}
	return exe
}

func runLaunch(ctx context.Context, e *env, opts any, args []string) error {
	o := opts.(*launchOpts)
	if o.explain {
		base := e.getenv("WRIT_URL")
		if base == "" {
			if c, err := newClient(e); err == nil {
				base = c.BaseURL()
			}
		}
		if base == "" {
			base = "http://127.0.0.1:7300"
		}
		p, err := launch.ExplainPlan(o.workspace, selfPath(), base, o.ro, nil)
		if err != nil {
			return err
		}
		launch.Explain(e.stdout, p)
		return nil
	}
	if len(args) == 0 {
		return usagef("run needs a command after --: writ run --trigger F -- CMD…")
	}
	if (o.trigger == "") == (o.delegateFrom == "") {
		return usagef("run needs exactly one of --trigger FILE and --delegate-from RUN")
	}
	if o.delegateFrom != "" && o.request == "" {
		return usagef("run --delegate-from RUN needs --request FILE")
	}
	if o.sandbox.set && o.sandbox.on && launch.ABI() < launch.MinABI {
		fmt.Fprintf(e.stderr, "writ run: error: --sandbox=true, but this kernel's Landlock ABI is %d (writ needs %d); nothing was started\n", launch.ABI(), launch.MinABI)
		return exitCode(launch.ExitSandbox)
	}
	var start func(ctx context.Context) (*client.Run, *ecdsa.PrivateKey, error)
	var base string
	if o.trigger != "" {
		body, err := readInput(o.trigger)
		if err != nil {
			fmt.Fprintf(e.stderr, "writ run: error: %v\n", err)
			return exitCode(launch.ExitLauncher)
		}
		c, err := newClient(e)
		if err != nil {
			fmt.Fprintf(e.stderr, "writ run: error: %v\n", err)
			return exitCode(launch.ExitLauncher)
		}
		base = c.BaseURL()
		start = func(ctx context.Context) (*client.Run, *ecdsa.PrivateKey, error) {
			key, err := token.NewDPoPKey()
			if err != nil {
				return nil, nil, err
			}
			run, err := c.StartRun(ctx, body, key)
			return run, key, err
		}
	} else {
		dir := e.getenv("WRIT_RUN_DIR")
		if dir == "" {
			return usagef("run --delegate-from acts as the parent run: set WRIT_RUN_DIR to its launcher's credentials (with dpop.key)")
		}
		pc, parent, err := runClient(e, dir)
		if err != nil {
			fmt.Fprintf(e.stderr, "writ run: error: %v\n", err)
			return exitCode(launch.ExitLauncher)
		}
		if parent != o.delegateFrom {
			fmt.Fprintf(e.stderr, "writ run: error: WRIT_RUN_DIR holds run %s's credentials, not %s's\n", parent, o.delegateFrom)
			return exitCode(launch.ExitLauncher)
		}
		base = pc.BaseURL()
		start = func(ctx context.Context) (*client.Run, *ecdsa.PrivateKey, error) {
			data, err := readInput(o.request)
			if err != nil {
				return nil, nil, err
			}
			req := &client.DelegateRequest{}
			if err := json.Unmarshal(data, req); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", o.request, err)
			}
			key, err := token.NewDPoPKey()
			if err != nil {
				return nil, nil, err
			}
			if req.DPoPJKT, err = token.Thumbprint(&key.PublicKey); err != nil {
				return nil, nil, err
			}
			d, err := pc.Delegate(ctx, parent, req)
			if err != nil {
				return nil, nil, err
			}
			run := &client.Run{Run: d.Run.Run, SPIFFEID: d.Run.SPIFFEID, Token: d.AccessToken, TokenType: d.TokenType,
				TokenExpiresAt: time.Now().Add(time.Duration(d.ExpiresIn) * time.Second)}
			return run, key, nil
		}
	}
	status, err := launch.Run(ctx, launch.Config{
		Start: start, URL: base, Workspace: o.workspace, Sandbox: o.sandbox.on, ExtraRO: o.ro, Self: selfPath(),
		Argv: args, Env: os.Environ(), Grace: o.grace,
		Stdin: e.stdin, Stdout: e.stdout, Stderr: e.stderr, Log: e.stderr,
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "writ run: error: %v\n", err)
		var le *launch.Error
		if errors.As(err, &le) {
			return exitCode(le.Code)
		}
		return exitCode(launch.ExitLauncher)
	}
	if status != 0 {
		return exitCode(status)
	}
	return nil
}
