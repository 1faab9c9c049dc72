// Command writ is the writ control plane (`writ serve`) and its CLI. Every
// command except init, migrate, backup, restore, `token create --bootstrap`, `trigger` (which
// works on local files), `hook install` and demo talks to a server through its HTTP API.
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
	"github.com/writ-dev/writ/approval"
	"github.com/writ-dev/writ/hook"
	"github.com/writ-dev/writ/launch"
	"github.com/writ-dev/writ/mcpgw"
)

// Exit codes (docs/design.md §4.9).
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
	new     func() cmd // a fresh command, its flags at their defaults
}

// cmd is one invocation of a command: Flags registers its flags on the
// command's flag set, and Run gets the positional arguments once they parse.
type cmd interface {
	Flags(fs *flag.FlagSet)
	Run(ctx context.Context, e *env, args []string) error
}

// noFlags is embedded by the commands that take no flags.
type noFlags struct{}

func (noFlags) Flags(*flag.FlagSet) {}

// commands is the dispatch table: each command's name, argument synopsis,
// summary and example, and the type that runs it (a fresh one for each
// invocation). A command's type is in the file named after it: run start
// in run_start.go, trigger new|sign|verify in trigger.go; the scripted
// demo is demo*.go.
var commands = []*command{
	{
		name: "agent disable", args: "NAME",
		summary: "kill an agent's runs and refuse new ones until enabled (admins)",
		example: "writ agent disable refactor-bot --reason \"pushing secrets\"",
		new:     func() cmd { return &agentDisableCommand{} },
	},
	{
		name: "agent enable", args: "NAME",
		summary: "let a disabled agent's runs start again (admins)",
		example: "writ agent enable refactor-bot",
		new:     func() cmd { return &agentEnableCommand{} },
	},
	{
		name: "approvals " + approval.Approve, args: "ID",
		summary: approval.Approve + " an approval request: sign its statement with your own key and submit it",
		example: "writ approvals approve apr_01jd… --key ~/.config/writ/alice.key\n" +
			"writ approvals approve apr_01jd… --ssh-key ~/.ssh/id_ed25519",
		new: func() cmd { return &approvalsVerdictCommand{verdict: approval.Approve} },
	},
	{
		name: "approvals " + approval.Deny, args: "ID",
		summary: approval.Deny + " an approval request: sign its statement with your own key and submit it",
		example: "writ approvals deny apr_01jd… --key ~/.config/writ/alice.key\n" +
			"writ approvals deny apr_01jd… --ssh-key ~/.ssh/id_ed25519",
		new: func() cmd { return &approvalsVerdictCommand{verdict: approval.Deny} },
	},
	{
		name:    "approvals list",
		summary: "list approval requests (pending by default)",
		example: "writ approvals list\nwrit approvals list --state approved --run RUN --json",
		new:     func() cmd { return &approvalsListCommand{} },
	},
	{
		name: "approvals show", args: "ID",
		summary: "show what an approval asks, the run, the risk, and what the agent wrote",
		example: "writ approvals show apr_01jd…",
		new:     func() cmd { return &approvalsShowCommand{} },
	},
	{
		name: "approvals statement", args: "ID",
		summary: "print the exact statement to sign, for signing out of band (ssh-keygen, a hardware key)",
		example: "writ approvals statement apr_01jd… --verdict approve > st.json\nssh-keygen -Y sign -n writ-approval -f ~/.ssh/id_ed25519 st.json\nwrit approvals approve apr_01jd… --ssh-sig st.json.sig --statement st.json",
		new:     func() cmd { return &approvalsStatementCommand{} },
	},
	{
		name: "attest get", args: "RUN",
		summary: "write a run's signed attestation (a DSSE envelope) once writ has signed it",
		example: "writ attest get 01jd3v4k5m6n7p8q9r0s1t2v3w -o run.intoto.json",
		new:     func() cmd { return &attestGetCommand{} },
	},
	{
		name: "attest verify", args: "FILE",
		summary: "verify a writ attestation (run, build provenance or release): signature (attest key), subjects, predicate, and the audit log inclusion proof a run attestation carries (log key)",
		example: "writ attest verify run.intoto.json                                   # keys from the server\n" +
			"writ attest verify run.intoto.json --key attest.pub --log-key \"$(cat log.pub)\"   # offline\n" +
			"writ attest verify app.provenance.json --key attest.pub --artifact out/app",
		new: func() cmd { return &attestVerifyCommand{} },
	},
	{
		name:    "audit export",
		summary: "write the audit log (checkpoint, checkpoints, every entry) as JSON lines for offline verification",
		example: "writ audit export > audit.jsonl",
		new:     func() cmd { return &auditExportCommand{} },
	},
	{
		name:    "audit tail",
		summary: "print the newest audit events; -f follows",
		example: "writ audit tail -n 20 -f",
		new:     func() cmd { return &auditTailCommand{} },
	},
	{
		name:    "audit verify",
		summary: "verify the audit log: checkpoint signature, every entry, and consistency with what this client saw before",
		example: "writ audit verify                          # online; pins the log key on first use\nwrit audit verify --export audit.jsonl --key \"$(cat log.pub)\"   # offline",
		new:     func() cmd { return &auditVerifyCommand{} },
	},
	{
		name: "build", args: "RUN",
		summary: "build a run's approved, merged commit with a configured recipe, sandboxed, and sign SLSA provenance for its outputs",
		example: "writ build 01jd3v4k5m6n7p8q9r0s1t2v3w --recipe go\nwrit build 01jd3v4k5m6n7p8q9r0s1t2v3w --recipe go --json",
		new:     func() cmd { return &buildCommand{} },
	},
	{
		name:    "credential get",
		summary: "ask for a credential for the run in WRIT_RUN_DIR (policy decides; it is a lease revoked when the run stops)",
		example: "writ credential get --kind git --target acme/api --permission write\n" +
			"writ credential get --kind postgres --target app --permission read:public --field dsn\n" +
			"writ credential get --kind secret --target production/stripe-key --field value   # after a human approved it",
		new: func() cmd { return &credentialGetCommand{} },
	},
	{
		name: "credential list", args: "[RUN]",
		summary: "list a run's leases (the run in WRIT_RUN_DIR, or RUN for a human)",
		example: "writ credential list 01jd0000000000000000000000\nwrit credential list --state active",
		new:     func() cmd { return &credentialListCommand{} },
	},
	{
		name: "credential revoke", args: "LEASE",
		summary: "revoke a lease now (the run that holds it, or an admin)",
		example: "writ credential revoke lse_01jd0000000000000000000000",
		new:     func() cmd { return &credentialRevokeCommand{} },
	},
	{
		name:    "decide",
		summary: "ask policy about an action (as the run in WRIT_RUN_DIR, or as a human with --dry-run --run RUN)",
		example: "WRIT_RUN_DIR=~/.local/state/writ/runs/RUN writ decide --kind tool --name shell:test\n" +
			"writ decide --dry-run --run RUN --kind credential --name secret --secret db/password --env production\n" +
			"writ decide --action action.json   # {\"kind\": \"git.push\", \"target\": {\"repo\": \"acme/api\", \"ref\": \"writ/RUN/fix\", \"paths\": [\"src/a.go\"]}}",
		new: func() cmd { return &decideCommand{} },
	},
	{
		name:    "demo",
		summary: "run writ's main path end to end on an in-process server in a temporary directory",
		example: "go run ./cmd/writ demo",
		new:     func() cmd { return &demoCommand{} },
	},
	{
		name: "exec", args: "--tool NAME -- CMD…",
		summary: "ask policy about exec:NAME, run CMD if allowed, record its outcome (exit 3 denied, 4 approval pending)",
		example: "writ exec --tool test -- go test ./...",
		new:     func() cmd { return &execCommand{} },
	},
	{
		name:    "freeze",
		summary: "suspend every active run and refuse new ones (admins); --off lifts it",
		example: "writ freeze --reason \"incident 42\"\nwrit freeze --off",
		new:     func() cmd { return &freezeCommand{} },
	},
	{
		name: "git-credential", args: "get|store|erase",
		summary: "git's credential helper: fetches a fresh git credential of the run in WRIT_RUN_DIR per operation",
		example: "git -c credential.helper='!writ git-credential' -c credential.useHttpPath=true clone http://127.0.0.1:7300/git/acme/api.git\n" +
			"# the launcher (writ run) sets this up through GIT_CONFIG_COUNT/GIT_CONFIG_KEY_n/GIT_CONFIG_VALUE_n",
		new: func() cmd { return &gitCredentialCommand{} },
	},
	{
		name:    "hook " + hook.ClaudeCode,
		summary: "answer " + hook.ClaudeCode + "'s tool-call hook from writ's policy (reads the hook JSON on stdin; WRIT_RUN_DIR names the run)",
		example: `.claude/settings.json: {"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [{"type": "command", "command": "writ hook claude-code"}]}],
                        "PostToolUse": [{"matcher": "*", "hooks": [{"type": "command", "command": "writ hook claude-code"}]}]}}`,
		new: func() cmd { return &hookCommand{agent: hook.ClaudeCode} },
	},
	{
		name:    "hook " + hook.Codex,
		summary: "answer " + hook.Codex + "'s tool-call hook from writ's policy (reads the hook JSON on stdin; WRIT_RUN_DIR names the run)",
		example: `~/.codex/hooks.json: {"hooks": {"PreToolUse": [{"hooks": [{"type": "command", "command": "writ hook codex"}]}],
                               "PostToolUse": [{"hooks": [{"type": "command", "command": "writ hook codex"}]}]}}`,
		new: func() cmd { return &hookCommand{agent: hook.Codex} },
	},
	{
		name:    "hook " + hook.Copilot,
		summary: "answer " + hook.Copilot + "'s tool-call hook from writ's policy (reads the hook JSON on stdin; WRIT_RUN_DIR names the run)",
		example: `.github/hooks/writ.json: {"version": 1, "hooks": {"preToolUse": [{"type": "command", "bash": "writ hook copilot"}]}}`,
		new:     func() cmd { return &hookCommand{agent: hook.Copilot} },
	},
	{
		name: "hook install", args: hook.ClaudeCode + "|" + hook.Codex + "|" + hook.Copilot,
		summary: "write an agent CLI's hook file for the version installed (asks CLI --version) and print the step the CLI needs to trust it",
		example: "writ hook install codex                       # $CODEX_HOME/hooks.json or ~/.codex/hooks.json\n" +
			"writ hook install copilot --dir ~/src/api     # ~/src/api/.github/hooks/writ.json\n" +
			"writ hook install claude-code --dir ~/src/api # ~/src/api/.claude/settings.json",
		new: func() cmd { return &hookInstallCommand{} },
	},
	{
		name: "init", args: "[DIR]",
		summary: "write a commented writ.yaml, the three server keys and an example trigger",
		example: "writ init --trust-domain writ.example.org --human alice /etc/writ",
		new:     func() cmd { return &initCommand{} },
	},
	{
		name: "keys rotate", args: "identity",
		summary: "rotate a server key (admins); the old key stays published until its tokens expire",
		example: "writ keys rotate identity",
		new:     func() cmd { return &keysRotateCommand{} },
	},
	{
		name: "mcp accept", args: "NAME",
		summary: "accept the tool descriptors an MCP server presents now and lift its quarantine (admins)",
		example: "writ mcp accept everything",
		new:     func() cmd { return &mcpAcceptCommand{} },
	},
	{
		name:    "mcp config",
		summary: "print the stdio server entry of `writ mcp proxy` for an MCP client, with the run as flags (clients start stdio servers without your environment)",
		example: "writ mcp config --client claude-code --server everything --run-dir ~/src/api/.writ/run   # .mcp.json\n" +
			"writ mcp config --client codex --server everything >> ~/.codex/config.toml            # WRIT_RUN_DIR names the run\n" +
			"writ mcp config --client inspector --server everything --url http://127.0.0.1:7300 --token-file mcp.token > mcp.json",
		new: func() cmd { return &mcpConfigCommand{} },
	},
	{
		name:    "mcp proxy",
		summary: "relay an agent's stdio MCP connection to writ's gateway at /mcp/NAME with the run's token",
		example: "writ mcp proxy --server everything --run-dir ~/src/api/.writ/run   # `writ mcp config` prints a client's entry",
		new:     func() cmd { return &mcpProxyCommand{} },
	},
	{
		name: "merge", args: "RUN",
		summary: "merge a run's branch into a protected branch by the SHA a human approved (asks for the approval the first time: exit 4)",
		example: "writ merge 01jd0000000000000000000000                  # exit 4: approval apr_… is pending\n" +
			"writ approvals approve apr_… --ssh-key ~/.ssh/id_ed25519    # another maintainer\n" +
			"writ merge 01jd0000000000000000000000                  # fast-forwards main to exactly the approved head\n" +
			"writ merge 01jd0000000000000000000000 --repo acme/api --branch fix --into release/1.2",
		new: func() cmd { return &mergeCommand{} },
	},
	{
		name:    "backup",
		args:    "FILE",
		summary: "write a consistent copy of the SQLite store, while writ serves",
		example: "writ backup --config /etc/writ/writ.yaml /backups/writ-$(date +%F).db",
		new:     func() cmd { return &backupCommand{} },
	},
	{
		name:    "restore",
		args:    "FILE",
		summary: "replace the SQLite store with a backup, writ stopped",
		example: "writ restore --config /etc/writ/writ.yaml /backups/writ-2026-12-01.db",
		new:     func() cmd { return &restoreCommand{} },
	},
	{
		name:    "migrate",
		summary: "apply pending store migrations",
		example: "writ migrate --config /etc/writ/writ.yaml",
		new:     func() cmd { return &migrateCommand{} },
	},
	{
		name:    "policy eval",
		summary: "evaluate a policy input document and explain the decision",
		example: "writ policy eval --input input.json\nwrit policy eval --input input.json --bundle ./policy --trace",
		new:     func() cmd { return &policyEvalCommand{} },
	},
	{
		name:    "policy test",
		summary: "run a policy bundle's Rego tests (the embedded default, or --bundle DIR)",
		example: "writ policy test\nwrit policy test --bundle ./policy --config writ.yaml -v",
		new:     func() cmd { return &policyTestCommand{} },
	},
	{
		name: "release", args: "ARTIFACT",
		summary: "release an artifact built by writ's builder to an environment (the release gate: provenance, approved merge, approval of this digest for this environment)",
		example: "writ release sha256:4f0c…e1 --env staging --run 01jd3v4k5m6n7p8q9r0s1t2v3w\nWRIT_RUN=… writ release sha256:4f0c…e1 --env production   # inside a release run",
		new:     func() cmd { return &releaseCommand{} },
	},
	{
		name: "repo add", args: "OWNER/REPO",
		summary: "host a repository in writ's git gateway (admins): a new empty one, or a copy of an upstream it then mirrors merges to",
		example: "writ repo add acme/api --init\n" +
			"writ repo add acme/api --upstream https://git.example.org/acme/api.git\n" +
			"git clone $WRIT_URL/git/acme/api.git   # humans: user anything, password = an API token",
		new: func() cmd { return &repoAddCommand{} },
	},
	{
		name: "run", args: "-- CMD [ARG…]",
		summary: "run an agent (CMD) under a new run: sandbox, egress proxy, heartbeats, watchdog",
		example: "writ run --trigger t.signed.json --workspace ~/src/api -- claude -p \"fix the flaky test\"\n" +
			"writ run --explain-sandbox\n" +
			"exit status: CMD's own; 125 writ failed before CMD started (or the sandbox could not be applied),\n" +
			"126 CMD could not be executed, 127 CMD not found, 128+N CMD died of signal N (143/137: the watchdog)",
		new: func() cmd { return &runCommand{} },
	},
	{
		name: "run delegate", args: "[PARENT]",
		summary: "start a child run of the run in WRIT_RUN_DIR: its scope, deadline and depth only narrow the parent's",
		example: "writ run delegate --agent review-bot --profile review --repo acme/api --path 'src/**' --tool read --duration 10m --run-dir ./review\n" +
			"writ run delegate --request child.json    # {\"agent\": …, \"profile\": …, \"scope\": {…}, \"task\": …}",
		new: func() cmd { return &runDelegateCommand{} },
	},
	{
		name: "run end", args: "RUN",
		summary: "end a run; its credentials die with it",
		example: "writ run end 01jd3v4k5m6n7p8q9r0s1t2v3w --reason \"ticket closed\"",
		new:     func() cmd { return &runTransitionCommand{verb: "end"} },
	},
	{
		name: "run kill", args: "RUN",
		summary: "kill a run (admins)",
		example: "writ run kill 01jd3v4k5m6n7p8q9r0s1t2v3w --reason \"ticket closed\"",
		new:     func() cmd { return &runTransitionCommand{verb: "kill"} },
	},
	{
		name:    "run list",
		summary: "list runs, newest first",
		example: "writ run list --state active",
		new:     func() cmd { return &runListCommand{} },
	},
	{
		name: "run resume", args: "RUN",
		summary: "resume a suspended run (admins)",
		example: "writ run resume 01jd3v4k5m6n7p8q9r0s1t2v3w --reason \"ticket closed\"",
		new:     func() cmd { return &runTransitionCommand{verb: "resume"} },
	},
	{
		name: "run show", args: "RUN",
		summary: "show one run",
		example: "writ run show 01jd3v4k5m6n7p8q9r0s1t2v3w",
		new:     func() cmd { return &runShowCommand{} },
	},
	{
		name:    "run start",
		summary: "start a run from a signed trigger (the trigger is the credential)",
		example: "writ run start --trigger t.signed.json\nwrit run start --trigger t.signed.json --json | jq -r .id",
		new:     func() cmd { return &runStartCommand{} },
	},
	{
		name: "run suspend", args: "RUN",
		summary: "suspend a run: its tokens are refused until a human resumes it",
		example: "writ run suspend 01jd3v4k5m6n7p8q9r0s1t2v3w --reason \"ticket closed\"",
		new:     func() cmd { return &runTransitionCommand{verb: "suspend"} },
	},
	{
		name:    "run token",
		summary: "mint a token of the current run (WRIT_RUN_DIR) for an audience",
		example: "writ run token --audience https://vault.example.org   # an unbound ≤ 5-minute token for Vault's JWT auth",
		new:     func() cmd { return &runTokenCommand{} },
	},
	{
		name:    "secret list",
		summary: "list static secrets: names and versions, never values (admins)",
		example: "writ secret list",
		new:     func() cmd { return &secretListCommand{} },
	},
	{
		name: "secret put", args: "ENV/NAME",
		summary: "store a static secret (admins); the value is read from stdin or --from-file, never from the command line",
		example: "printf %s \"$STRIPE_KEY\" | writ secret put production/stripe-key\nwrit secret put staging/db-password --from-file ./pw.txt",
		new:     func() cmd { return &secretPutCommand{} },
	},
	{
		name: "secret rm", args: "ENV/NAME",
		summary: "remove a static secret (admins)",
		example: "writ secret rm staging/db-password",
		new:     func() cmd { return &secretRmCommand{} },
	},
	{
		name:    "serve",
		summary: "run the writ server",
		example: "writ serve --config /etc/writ/writ.yaml\nwrit serve --dev            # throwaway installation, prints what to try next",
		new:     func() cmd { return &serveCommand{} },
	},
	{
		name:    "token create",
		summary: "create a human API token (--bootstrap: the first one, straight into the store)",
		example: "writ token create --bootstrap --config writ.yaml --human alice   # once, on the server host\nwrit token create --human bob --ttl 720h                       # then through the API (admins for others)",
		new:     func() cmd { return &tokenCreateCommand{} },
	},
	{
		name: "trace", args: "RUN|ARTIFACT",
		summary: "a run's timeline (trigger, every action and decision, credentials, approvals, with log indexes), or an artifact's chain from ticket to deployment",
		example: "writ trace 01jd3v4k5m6n7p8q9r0s1t2v3w\nwrit trace 01jd3v4k5m6n7p8q9r0s1t2v3w --json\nwrit trace sha256:4f0c…e1",
		new:     func() cmd { return &traceCommand{} },
	},
	{
		name:    "trigger new",
		summary: "print a trigger template (JSON) to edit and sign",
		example: "writ trigger new --issuer alice --agent refactor-bot --repo acme/api --ticket jira:ENG-123 --task 'rename the config loader' > t.json",
		new:     func() cmd { return &triggerNewCommand{} },
	},
	{
		name: "trigger sign", args: "FILE",
		summary: "sign a trigger: DSSE with a key file, or wrap an ssh-keygen signature",
		example: "writ trigger sign --key alice.key t.json > t.signed.json\nssh-keygen -Y sign -n writ-trigger -f ~/.ssh/id_ed25519 t.json && writ trigger sign --ssh-sig t.json.sig t.json > t.signed.json",
		new:     func() cmd { return &triggerSignCommand{} },
	},
	{
		name: "trigger verify", args: "FILE",
		summary: "verify a signed trigger offline against a config's signers (and its rules) or one public key",
		example: "writ trigger verify --config writ.yaml t.signed.json\nwrit trigger verify --pubkey \"$(cat alice.key.pub)\" --signer alice t.signed.json",
		new:     func() cmd { return &triggerVerifyCommand{} },
	},
	{
		name:    "version",
		summary: "print writ's version",
		example: "writ version",
		new:     func() cmd { return &versionCommand{} },
	},
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

// exitCode ends a command with a code and no further message: the command
// has already said what happened.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

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
	c := cmd.new()
	fs := flag.NewFlagSet("writ "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.Flags(fs)
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
	err = c.Run(ctx, e, args)
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
