// Command writ is the writ control plane (`writ serve`) and its CLI. Every
// command except init, migrate, `token create --bootstrap`, `trigger` (which
// works on local files) and demo talks to a server through its HTTP API.
//
// Usage: writ <command> [flags]; `writ help` lists the commands and
// `writ <command> -h` shows one with an example.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/launch"
	"github.com/writ-dev/writ/mcpgw"
)

// Exit codes (DESIGN.md §4.9).
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitDenied   = 3
	exitApproval = 4
)

// command is one entry of the dispatch table.
type command struct {
	name    string // "run start"
	args    string // argument synopsis after the flags
	summary string
	example string
	// flags registers the command's flags; run gets the parsed set.
	flags func(fs *flag.FlagSet) any
	run   func(ctx context.Context, e *env, opts any, args []string) error
}

// env is what a command may touch: its streams and environment. Tests and
// the demo run commands with their own env.
type env struct {
	stdin          io.Reader // nil means no input
	stdout, stderr io.Writer
	getenv         func(string) string
}

// usageError is a command-line mistake: exit 2 with the command's usage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

var commands []*command

func register(c *command) { commands = append(commands, c) }

func main() { os.Exit(main1()) }

func main1() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	return runMain(ctx, e, os.Args[1:])
}

// runMain dispatches args to a command and maps its error to an exit code.
func runMain(ctx context.Context, e *env, args []string) int {
	if len(args) > 0 && args[0] == mcpgw.DemoServerArg {
		// `writ demo`'s MCP upstream (no npm needed).
		return mcpgw.ServeDemo()
	}
	if len(args) > 0 && args[0] == launch.SandboxArg {
		// `writ run`'s sandbox helper: restrict, then exec CMD.
		return launch.SandboxMain(e.stderr)
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printHelp(e.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, rest := lookup(args)
	if cmd != nil && cmd.name == "run" && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		// `writ run WORD`: not the launcher (which takes flags, then --
		// CMD), so a mistyped subcommand of run.
		cmd = nil
	}
	if cmd == nil {
		fmt.Fprintf(e.stderr, "writ: error: unknown command %q\n", strings.Join(args[:min(len(args), 2)], " "))
		if subs := subcommands(args[0]); len(subs) > 0 {
			fmt.Fprintf(e.stderr, "writ: hint: %q takes one of: %s\n", args[0], strings.Join(subs, ", "))
			if args[0] == "run" {
				fmt.Fprintf(e.stderr, "writ: hint: to run an agent under a new run: writ run --trigger FILE [flags] -- CMD [ARG…]\n")
			}
		} else {
			fmt.Fprintf(e.stderr, "writ: hint: run `writ help` for the list of commands\n")
		}
		return exitUsage
	}
	fs := flag.NewFlagSet("writ "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var opts any
	if cmd.flags != nil {
		opts = cmd.flags(fs)
	}
	args, err := parseInterleaved(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(e.stdout, cmd, fs)
			return exitOK
		}
		fmt.Fprintf(e.stderr, "writ: error: %v\n", err)
		printUsage(e.stderr, cmd, fs)
		return exitUsage
	}
	err = cmd.run(ctx, e, opts, args)
	return report(e, cmd, fs, err)
}

// parseInterleaved parses flags that may come before or after positional
// arguments (`writ run end RUN --reason done`), as the standard flag
// package alone does not. Everything after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if i := len(args) - len(rest) - 1; i >= 0 && args[i] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func report(e *env, cmd *command, fs *flag.FlagSet, err error) int {
	if err == nil {
		return exitOK
	}
	var xc exitCode
	if errors.As(err, &xc) {
		return int(xc)
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "writ: error: %s\n", ue.msg)
		printUsage(e.stderr, cmd, fs)
		return exitUsage
	}
	var we *writ.Error
	if errors.As(err, &we) {
		fmt.Fprintf(e.stderr, "writ: error: %s: %s\n", we.Code, we.Message)
		for _, it := range we.Items {
			fmt.Fprintf(e.stderr, "writ:   - %s\n", it)
		}
		switch we.Kind {
		case writ.KindDenied:
			return exitDenied
		case writ.KindApprovalPending:
			if we.Approval != "" {
				fmt.Fprintf(e.stderr, "writ: hint: approval %s is pending; see `writ approvals show %s`\n", we.Approval, we.Approval)
			}
			return exitApproval
		}
		return exitError
	}
	fmt.Fprintf(e.stderr, "writ: error: %v\n", err)
	return exitError
}

// lookup finds the longest command name that prefixes args.
func lookup(args []string) (*command, []string) {
	if len(args) >= 2 {
		for _, c := range commands {
			if c.name == args[0]+" "+args[1] {
				return c, args[2:]
			}
		}
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c, args[1:]
		}
	}
	return nil, nil
}

func subcommands(noun string) []string {
	var out []string
	for _, c := range commands {
		if n, v, ok := strings.Cut(c.name, " "); ok && n == noun {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

func printHelp(w io.Writer) {
	fmt.Fprintf(w, "writ governs autonomous coding agents: signed triggers, bounded runs, policy on every action.\n\nUsage: writ <command> [flags]\n\nCommands:\n")
	cs := append([]*command(nil), commands...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-18s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun `writ <command> -h` for a command's flags and an example.\n")
	fmt.Fprintf(w, "Exit codes: 0 ok, 1 error, 2 usage, 3 denied by policy, 4 approval pending.\n")
}

func printUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: writ %s [flags] %s\n\n%s\n", c.name, c.args, c.summary)
	var flags strings.Builder
	fs.SetOutput(&flags)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	if flags.Len() > 0 {
		fmt.Fprintf(w, "\nFlags:\n%s", flags.String())
	}
	fmt.Fprintf(w, "\nExample:\n  %s\n", strings.ReplaceAll(c.example, "\n", "\n  "))
}
