package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/trigger"
)

type triggerNewOpts struct {
	issuer, agent, profile, repo, base, ticket, task string
	paths, tools, hosts                              listFlag
	duration, ttl                                    time.Duration
	write                                            bool
	envs, secrets                                    listFlag
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type triggerSignOpts struct {
	key, sshSig, format, out string
}

type triggerVerifyOpts struct {
	config, pubkey, pubkeyFile, signer string
	json                               bool
}

func init() {
	register(&command{
		name: "trigger new", summary: "print a trigger template (JSON) to edit and sign",
		example: "writ trigger new --issuer alice --agent refactor-bot --repo acme/api --ticket jira:ENG-123 --task 'rename the config loader' > t.json",
		flags: func(fs *flag.FlagSet) any {
			o := &triggerNewOpts{}
			fs.StringVar(&o.issuer, "issuer", "alice", "the signer who will sign it")
			fs.StringVar(&o.agent, "agent", "", "agent to run (default refactor-bot)")
			fs.StringVar(&o.profile, "profile", "", "profile (default refactor)")
			fs.StringVar(&o.repo, "repo", "", "repository owner/repo (default acme/api)")
			fs.StringVar(&o.base, "base", "", "base branch (default main)")
			fs.BoolVar(&o.write, "write", true, "whether the run may push to the repo")
			fs.Var(&o.paths, "path", "path pattern the run may change (repeatable)")
			fs.Var(&o.tools, "tool", "tool the run may use (repeatable; replaces the template's list)")
			fs.Var(&o.hosts, "host", "host the run may reach (repeatable)")
			fs.Var(&o.envs, "env", "environment the run may act on (repeatable)")
			fs.Var(&o.secrets, "secret", "secret name pattern the run may ask for (repeatable)")
			fs.StringVar(&o.ticket, "ticket", "", "ticket as SYSTEM:ID, e.g. jira:ENG-123")
			fs.StringVar(&o.task, "task", "", "free text for the agent (never an input to scope)")
			fs.DurationVar(&o.duration, "duration", 0, "the run's maximum duration (default 30m)")
			fs.DurationVar(&o.ttl, "ttl", 0, "how long the trigger may be used to start a run (default 1h)")
			return o
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			o := opts.(*triggerNewOpts)
			if len(args) > 0 {
				return usagef("trigger new takes no arguments")
			}
			now := time.Now().UTC().Truncate(time.Second)
			t := trigger.Template(now, o.issuer)
			if o.agent != "" {
				t.Agent = o.agent
			}
			if o.profile != "" {
				t.Profile = o.profile
			}
			if o.repo != "" || o.base != "" || len(o.paths) > 0 || !o.write {
				if len(t.Scope.Repos) == 0 {
					t.Scope.Repos = []writ.RepoScope{{Name: "acme/api", Base: "main"}}
				}
				r := &t.Scope.Repos[0]
				if o.repo != "" {
					r.Name = o.repo
				}
				if o.base != "" {
					r.Base = o.base
				}
				if len(o.paths) > 0 {
					r.Paths = o.paths
				}
				r.Write = o.write
			}
			if len(o.tools) > 0 {
				t.Scope.Tools = o.tools
			}
			if len(o.hosts) > 0 {
				t.Scope.Hosts = o.hosts
			}
			if len(o.envs) > 0 {
				t.Scope.Environments = o.envs
			}
			if len(o.secrets) > 0 {
				t.Scope.Secrets = o.secrets
			}
			if o.ticket != "" {
				sys, id, ok := strings.Cut(o.ticket, ":")
				if !ok || sys == "" || id == "" {
					return usagef("--ticket %q: want SYSTEM:ID such as jira:ENG-123", o.ticket)
				}
				t.Ticket = writ.Ticket{System: sys, ID: id}
			}
			if o.task != "" {
				t.Task = o.task
			}
			if o.duration > 0 {
				t.Scope.MaxDuration = writ.Duration(o.duration)
			}
			if o.ttl > 0 {
				t.ExpiresAt = t.IssuedAt.Add(o.ttl)
			}
			if err := t.Scope.Validate(); err != nil {
				return usagef("%v", err)
			}
			return printJSON(e.stdout, t)
		},
	})
	register(&command{
		name: "trigger sign", args: "FILE", summary: "sign a trigger: DSSE with a key file, or wrap an ssh-keygen signature",
		example: "writ trigger sign --key alice.key t.json > t.signed.json\nssh-keygen -Y sign -n writ-trigger -f ~/.ssh/id_ed25519 t.json && writ trigger sign --ssh-sig t.json.sig t.json > t.signed.json",
		flags: func(fs *flag.FlagSet) any {
			o := &triggerSignOpts{}
			fs.StringVar(&o.key, "key", "", "private key file: PEM (PKCS#8/SEC1) or OpenSSH, Ed25519 or ECDSA P-256")
			fs.StringVar(&o.sshSig, "ssh-sig", "", "an armored SSH signature of FILE made by `ssh-keygen -Y sign -n writ-trigger`")
			fs.StringVar(&o.format, "format", "dsse", "with --key: dsse, or sshsig to sign in the SSH signature format")
			fs.StringVar(&o.out, "o", "", "write here instead of stdout")
			return o
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			o := opts.(*triggerSignOpts)
			if len(args) != 1 {
				return usagef("trigger sign takes one trigger file")
			}
			if (o.key == "") == (o.sshSig == "") {
				return usagef("give exactly one of --key or --ssh-sig")
			}
			payload, err := readInput(args[0])
			if err != nil {
				return err
			}
			var signed []byte
			switch {
			case o.sshSig != "":
				sig, err := os.ReadFile(o.sshSig)
				if err != nil {
					return err
				}
				signed, err = trigger.WrapSSHSig(payload, sig)
				if err != nil {
					return err
				}
			default:
				data, err := os.ReadFile(o.key)
				if err != nil {
					return err
				}
				k, err := trigger.LoadPrivateKey(data)
				if err != nil {
					return fmt.Errorf("%s: %w", o.key, err)
				}
				switch o.format {
				case "dsse":
					signed, err = trigger.SignDSSE(payload, writ.TriggerPayloadType, k)
				case "sshsig":
					signed, err = trigger.SignSSH(payload, writ.TriggerSSHNS, k)
				default:
					return usagef("--format %q: want dsse or sshsig", o.format)
				}
				if err != nil {
					return err
				}
			}
			signed = append(signed, '\n')
			if o.out != "" {
				return os.WriteFile(o.out, signed, 0o644)
			}
			_, err = e.stdout.Write(signed)
			return err
		},
	})
	register(&command{
		name: "trigger verify", args: "FILE", summary: "verify a signed trigger offline against a config's signers (and its rules) or one public key",
		example: "writ trigger verify --config writ.yaml t.signed.json\nwrit trigger verify --pubkey \"$(cat alice.key.pub)\" --signer alice t.signed.json",
		flags: func(fs *flag.FlagSet) any {
			o := &triggerVerifyOpts{}
			fs.StringVar(&o.config, "config", "", "server config: verify against its signers and check its rules now")
			fs.StringVar(&o.pubkey, "pubkey", "", "verify against this one public key (authorized_keys line or PEM) instead")
			fs.StringVar(&o.pubkeyFile, "pubkey-file", "", "like --pubkey, read from a file (e.g. alice.key.pub)")
			fs.StringVar(&o.signer, "signer", "", "with --pubkey: the signer's name")
			fs.BoolVar(&o.json, "json", false, "print JSON")
			return o
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			o := opts.(*triggerVerifyOpts)
			if len(args) != 1 {
				return usagef("trigger verify takes one signed trigger file")
			}
			if o.pubkeyFile != "" {
				if o.pubkey != "" {
					return usagef("give --pubkey or --pubkey-file, not both")
				}
				data, err := os.ReadFile(o.pubkeyFile)
				if err != nil {
					return err
				}
				o.pubkey = strings.TrimSpace(string(data))
			}
			if (o.config == "") == (o.pubkey == "") {
				return usagef("give exactly one of --config or --pubkey")
			}
			body, err := readInput(args[0])
			if err != nil {
				return err
			}
			var ring *trigger.KeyRing
			var rules *trigger.Rules
			if o.config != "" {
				cfg, err := server.LoadConfig(o.config)
				if err != nil {
					return err
				}
				if ring, rules, err = server.TriggerRules(cfg); err != nil {
					return err
				}
			} else {
				if o.signer == "" {
					return usagef("--pubkey needs --signer NAME")
				}
				ring = trigger.NewKeyRing()
				if _, err := ring.Add(o.signer, o.pubkey); err != nil {
					return err
				}
			}
			v, err := trigger.Verify(body, ring)
			if err != nil {
				return err
			}
			checked := "signature and payload"
			if rules != nil {
				if err := rules.Check(v, time.Now()); err != nil {
					return err
				}
				checked += ", validity window and scope"
			}
			if o.json {
				return printJSON(e.stdout, map[string]any{"signer": v.Signer, "keyId": v.KeyID, "format": v.Format, "digest": v.Digest, "trigger": json.RawMessage(v.Payload)})
			}
			fmt.Fprintf(e.stdout, "ok: %s verified\nsigner  %s (%s, %s)\ndigest  %s\ntrigger %s: %s as %s for %s:%s, expires %s\n",
				checked, v.Signer, v.KeyID, v.Format, v.Digest, v.Trigger.ID, v.Trigger.Agent, v.Trigger.Profile,
				v.Trigger.Ticket.System, v.Trigger.Ticket.ID, v.Trigger.ExpiresAt.Format(time.RFC3339))
			return nil
		},
	})
}
