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

// runCommand is `writ run -- CMD`: the launcher, which starts a run (from
// a signed trigger, or a child of a run) and runs the agent under it.
type runCommand struct {
	trigger, delegateFrom, request, workspace string
	sandbox                                   sandboxFlag
	explain                                   bool
	grace                                     time.Duration
	ro                                        listFlag
}

func (c *runCommand) Flags(fs *flag.FlagSet) {
	c.sandbox.on = launch.ABI() >= launch.MinABI
	fs.StringVar(&c.trigger, "trigger", "", "signed trigger file (the run's credential); - for stdin")
	fs.StringVar(&c.delegateFrom, "delegate-from", "", "start a child of this run instead (WRIT_RUN_DIR holds its launcher's credentials), with --request FILE")
	fs.StringVar(&c.request, "request", "", "with --delegate-from: the child's agent, profile, scope and task (JSON, as writ run delegate)")
	fs.StringVar(&c.workspace, "workspace", "", "CMD's working directory, the only one it may write (default: the current directory)")
	fs.Var(&c.sandbox, "sandbox", "run CMD in the Landlock sandbox (default: on where the kernel supports it)")
	fs.BoolVar(&c.explain, "explain-sandbox", false, "print what the sandbox enforces and what it does not, and exit")
	fs.DurationVar(&c.grace, "grace", 10*time.Second, "time between SIGTERM and SIGKILL when the watchdog stops CMD")
	fs.Var(&c.ro, "ro", "another directory CMD may read (repeatable), such as a toolchain outside /usr")
}

func (c *runCommand) Run(ctx context.Context, e *env, args []string) error {
	if c.explain {
		return c.explainSandbox(e)
	}
	if len(args) == 0 {
		return usagef("run needs a command after --: writ run --trigger F -- CMD…")
	}
	if (c.trigger == "") == (c.delegateFrom == "") {
		return usagef("run needs exactly one of --trigger FILE and --delegate-from RUN")
	}
	if c.delegateFrom != "" && c.request == "" {
		return usagef("run --delegate-from RUN needs --request FILE")
	}
	if c.sandbox.set && c.sandbox.on && launch.ABI() < launch.MinABI {
		fmt.Fprintf(e.stderr, "writ run: error: --sandbox=true, but this kernel's Landlock ABI is %d (writ needs %d); nothing was started\n", launch.ABI(), launch.MinABI)
		return exitCode(launch.ExitSandbox)
	}
	var start startFunc
	var base string
	var err error
	if c.trigger != "" {
		start, base, err = c.startFromTrigger(e)
	} else {
		start, base, err = c.startChild(e)
	}
	if err != nil {
		return err
	}
	status, err := launch.Run(ctx, launch.Config{
		Start: start, URL: base, Workspace: c.workspace, Sandbox: c.sandbox.on, ExtraRO: c.ro, Self: selfPath(),
		Argv: args, Env: os.Environ(), Grace: c.grace,
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

// explainSandbox is --explain-sandbox: what the sandbox would enforce.
func (c *runCommand) explainSandbox(e *env) error {
	base := e.getenv("WRIT_URL")
	if base == "" {
		if cl, err := newClient(e); err == nil {
			base = cl.BaseURL()
		}
	}
	if base == "" {
		base = "http://127.0.0.1:7300"
	}
	p, err := launch.ExplainPlan(c.workspace, selfPath(), base, c.ro, nil)
	if err != nil {
		return err
	}
	launch.Explain(e.stdout, p)
	return nil
}

// startFunc starts the launcher's run: its first token, bound to key.
type startFunc = func(ctx context.Context) (*client.Run, *ecdsa.PrivateKey, error)

// launcherFailed reports an error of the launcher before CMD started.
func launcherFailed(e *env, err error) error {
	fmt.Fprintf(e.stderr, "writ run: error: %v\n", err)
	return exitCode(launch.ExitLauncher)
}

// startFromTrigger starts a run from the signed trigger of --trigger; it
// returns how, and writ's URL.
func (c *runCommand) startFromTrigger(e *env) (startFunc, string, error) {
	body, err := readInput(c.trigger)
	if err != nil {
		return nil, "", launcherFailed(e, err)
	}
	cl, err := newClient(e)
	if err != nil {
		return nil, "", launcherFailed(e, err)
	}
	start := func(ctx context.Context) (*client.Run, *ecdsa.PrivateKey, error) {
		key, err := token.NewDPoPKey()
		if err != nil {
			return nil, nil, err
		}
		run, err := cl.StartRun(ctx, body, key)
		return run, key, err
	}
	return start, cl.BaseURL(), nil
}

// startChild starts a child of --delegate-from, the run whose launcher's
// credentials are in WRIT_RUN_DIR, as --request asks; it returns how, and
// writ's URL.
func (c *runCommand) startChild(e *env) (startFunc, string, error) {
	dir := e.getenv("WRIT_RUN_DIR")
	if dir == "" {
		return nil, "", usagef("run --delegate-from acts as the parent run: set WRIT_RUN_DIR to its launcher's credentials (with dpop.key)")
	}
	pc, parent, err := runClient(e, dir)
	if err != nil {
		return nil, "", launcherFailed(e, err)
	}
	if parent != c.delegateFrom {
		fmt.Fprintf(e.stderr, "writ run: error: WRIT_RUN_DIR holds run %s's credentials, not %s's\n", parent, c.delegateFrom)
		return nil, "", exitCode(launch.ExitLauncher)
	}
	start := func(ctx context.Context) (*client.Run, *ecdsa.PrivateKey, error) {
		data, err := readInput(c.request)
		if err != nil {
			return nil, nil, err
		}
		req := &client.DelegateRequest{}
		if err := json.Unmarshal(data, req); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", c.request, err)
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
	return start, pc.BaseURL(), nil
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
