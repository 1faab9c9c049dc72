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

// triggerNewCommand is `writ trigger new`: a trigger template to edit and
// sign.
type triggerNewCommand struct {
	issuer, agent, profile, repo, base, ticket, task string
	paths, tools, hosts                              listFlag
	duration, ttl                                    time.Duration
	write                                            bool
	envs, secrets                                    listFlag
}

func (c *triggerNewCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.issuer, "issuer", "alice", "the signer who will sign it")
	fs.StringVar(&c.agent, "agent", "", "agent to run (default refactor-bot)")
	fs.StringVar(&c.profile, "profile", "", "profile (default refactor)")
	fs.StringVar(&c.repo, "repo", "", "repository owner/repo (default acme/api)")
	fs.StringVar(&c.base, "base", "", "base branch (default main)")
	fs.BoolVar(&c.write, "write", true, "whether the run may push to the repo")
	fs.Var(&c.paths, "path", "path pattern the run may change (repeatable)")
	fs.Var(&c.tools, "tool", "tool the run may use (repeatable; replaces the template's list)")
	fs.Var(&c.hosts, "host", "host the run may reach (repeatable)")
	fs.Var(&c.envs, "env", "environment the run may act on (repeatable)")
	fs.Var(&c.secrets, "secret", "secret name pattern the run may ask for (repeatable)")
	fs.StringVar(&c.ticket, "ticket", "", "ticket as SYSTEM:ID, e.g. jira:ENG-123")
	fs.StringVar(&c.task, "task", "", "free text for the agent (never an input to scope)")
	fs.DurationVar(&c.duration, "duration", 0, "the run's maximum duration (default 30m)")
	fs.DurationVar(&c.ttl, "ttl", 0, "how long the trigger may be used to start a run (default 1h)")
}

func (c *triggerNewCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		return usagef("trigger new takes no arguments")
	}
	now := time.Now().UTC().Truncate(time.Second)
	t := trigger.Template(now, c.issuer)
	if c.agent != "" {
		t.Agent = c.agent
	}
	if c.profile != "" {
		t.Profile = c.profile
	}
	c.editScope(&t.Scope)
	if c.ticket != "" {
		sys, id, ok := strings.Cut(c.ticket, ":")
		if !ok || sys == "" || id == "" {
			return usagef("--ticket %q: want SYSTEM:ID such as jira:ENG-123", c.ticket)
		}
		t.Ticket = writ.Ticket{System: sys, ID: id}
	}
	if c.task != "" {
		t.Task = c.task
	}
	if c.ttl > 0 {
		t.ExpiresAt = t.IssuedAt.Add(c.ttl)
	}
	if err := t.Scope.Validate(); err != nil {
		return usagef("%v", err)
	}
	return printJSON(e.stdout, t)
}

// editScope replaces the parts of the template's scope the flags name.
func (c *triggerNewCommand) editScope(s *writ.Scope) {
	if c.repo != "" || c.base != "" || len(c.paths) > 0 || !c.write {
		if len(s.Repos) == 0 {
			s.Repos = []writ.RepoScope{{Name: "acme/api", Base: "main"}}
		}
		r := &s.Repos[0]
		if c.repo != "" {
			r.Name = c.repo
		}
		if c.base != "" {
			r.Base = c.base
		}
		if len(c.paths) > 0 {
			r.Paths = c.paths
		}
		r.Write = c.write
	}
	if len(c.tools) > 0 {
		s.Tools = c.tools
	}
	if len(c.hosts) > 0 {
		s.Hosts = c.hosts
	}
	if len(c.envs) > 0 {
		s.Environments = c.envs
	}
	if len(c.secrets) > 0 {
		s.Secrets = c.secrets
	}
	if c.duration > 0 {
		s.MaxDuration = writ.Duration(c.duration)
	}
}

// triggerSignCommand is `writ trigger sign FILE`.
type triggerSignCommand struct {
	key, sshSig, format, out string
}

func (c *triggerSignCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.key, "key", "", "private key file: PEM (PKCS#8/SEC1) or OpenSSH, Ed25519 or ECDSA P-256")
	fs.StringVar(&c.sshSig, "ssh-sig", "", "an armored SSH signature of FILE made by `ssh-keygen -Y sign -n writ-trigger`")
	fs.StringVar(&c.format, "format", "dsse", "with --key: dsse, or sshsig to sign in the SSH signature format")
	fs.StringVar(&c.out, "o", "", "write here instead of stdout")
}

func (c *triggerSignCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("trigger sign takes one trigger file")
	}
	if (c.key == "") == (c.sshSig == "") {
		return usagef("give exactly one of --key or --ssh-sig")
	}
	payload, err := readInput(args[0])
	if err != nil {
		return err
	}
	var signed []byte
	switch {
	case c.sshSig != "":
		sig, err := os.ReadFile(c.sshSig)
		if err != nil {
			return err
		}
		signed, err = trigger.WrapSSHSig(payload, sig)
		if err != nil {
			return err
		}
	default:
		data, err := os.ReadFile(c.key)
		if err != nil {
			return err
		}
		k, err := trigger.LoadPrivateKey(data)
		if err != nil {
			return fmt.Errorf("%s: %w", c.key, err)
		}
		switch c.format {
		case "dsse":
			signed, err = trigger.SignDSSE(payload, writ.TriggerPayloadType, k)
		case "sshsig":
			signed, err = trigger.SignSSH(payload, writ.TriggerSSHNS, k)
		default:
			return usagef("--format %q: want dsse or sshsig", c.format)
		}
		if err != nil {
			return err
		}
	}
	signed = append(signed, '\n')
	if c.out != "" {
		return os.WriteFile(c.out, signed, 0o644)
	}
	_, err = e.stdout.Write(signed)
	return err
}

// triggerVerifyCommand is `writ trigger verify FILE`: offline, against a
// config's signers and rules or one public key.
type triggerVerifyCommand struct {
	config, pubkey, pubkeyFile, signer string
	json                               bool
}

func (c *triggerVerifyCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "server config: verify against its signers and check its rules now")
	fs.StringVar(&c.pubkey, "pubkey", "", "verify against this one public key (authorized_keys line or PEM) instead")
	fs.StringVar(&c.pubkeyFile, "pubkey-file", "", "like --pubkey, read from a file (e.g. alice.key.pub)")
	fs.StringVar(&c.signer, "signer", "", "with --pubkey: the signer's name")
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

func (c *triggerVerifyCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("trigger verify takes one signed trigger file")
	}
	if c.pubkeyFile != "" {
		if c.pubkey != "" {
			return usagef("give --pubkey or --pubkey-file, not both")
		}
		data, err := os.ReadFile(c.pubkeyFile)
		if err != nil {
			return err
		}
		c.pubkey = strings.TrimSpace(string(data))
	}
	if (c.config == "") == (c.pubkey == "") {
		return usagef("give exactly one of --config or --pubkey")
	}
	body, err := readInput(args[0])
	if err != nil {
		return err
	}
	var ring *trigger.KeyRing
	var rules *trigger.Rules
	if c.config != "" {
		cfg, err := server.LoadConfig(c.config)
		if err != nil {
			return err
		}
		if ring, rules, err = server.TriggerRules(cfg); err != nil {
			return err
		}
	} else {
		if c.signer == "" {
			return usagef("--pubkey needs --signer NAME")
		}
		ring = trigger.NewKeyRing()
		if _, err := ring.Add(c.signer, c.pubkey); err != nil {
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
	if c.json {
		return printJSON(e.stdout, map[string]any{"signer": v.Signer, "keyId": v.KeyID, "format": v.Format, "digest": v.Digest, "trigger": json.RawMessage(v.Payload)})
	}
	fmt.Fprintf(e.stdout, "ok: %s verified\nsigner  %s (%s, %s)\ndigest  %s\ntrigger %s: %s as %s for %s:%s, expires %s\n",
		checked, v.Signer, v.KeyID, v.Format, v.Digest, v.Trigger.ID, v.Trigger.Agent, v.Trigger.Profile,
		v.Trigger.Ticket.System, v.Trigger.Ticket.ID, v.Trigger.ExpiresAt.Format(time.RFC3339))
	return nil
}
