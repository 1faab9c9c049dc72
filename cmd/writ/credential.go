package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/writ-dev/writ"
)

// credentialGetCommand is `writ credential get`: a lease for the run in
// WRIT_RUN_DIR.
type credentialGetCommand struct {
	kind, target, field string
	perms               stringList
	ttl                 time.Duration
	asJSON              bool
}

func (c *credentialGetCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.kind, "kind", "", "the credential kind: git, secret, postgres, vault, github")
	fs.StringVar(&c.target, "target", "", "what it is for: a repo (owner/repo), a secret (environment/name), a database, a Vault path")
	fs.Var(&c.perms, "permission", "a permission (repeat): read, write, read:<schema>, issues:write, …")
	fs.DurationVar(&c.ttl, "ttl", 0, "how long it should live (default and cap: what policy allows, never past the run's deadline)")
	fs.StringVar(&c.field, "field", "", "print only this field of the credential (password, token, value, dsn, …)")
	fs.BoolVar(&c.asJSON, "json", false, "print the lease and the credential as JSON")
}

func (c *credentialGetCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 0 {
		return usagef("credential get takes flags only")
	}
	if c.kind == "" || c.target == "" {
		return usagef("give --kind and --target")
	}
	dir, err := runDir(e, "credential get")
	if err != nil {
		return err
	}
	cl, run, err := runClient(e, dir)
	if err != nil {
		return err
	}
	out, err := cl.RequestCredential(ctx, run, &writ.CredentialRequest{Kind: c.kind, Target: c.target, Permissions: c.perms, TTL: writ.Duration(c.ttl)})
	if err != nil {
		return err
	}
	switch {
	case c.asJSON:
		return printJSON(e.stdout, out)
	case c.field != "":
		v, ok := out.Credential[c.field]
		if !ok {
			keys := make([]string, 0, len(out.Credential))
			for k := range out.Credential {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			return fmt.Errorf("the credential has no field %q (it has: %s); lease %s stays until it expires or is revoked", c.field, strings.Join(keys, ", "), out.Lease.ID)
		}
		fmt.Fprintln(e.stdout, v)
	default:
		keys := make([]string, 0, len(out.Credential))
		for k := range out.Credential {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(e.stdout, "%s=%s\n", k, out.Credential[k])
		}
	}
	fmt.Fprintf(e.stderr, "lease %s: %s %s %s, expires %s\n", out.Lease.ID, out.Lease.Kind, out.Lease.Target,
		strings.Join(out.Lease.Permissions, ","), out.Lease.ExpiresAt.Format(time.RFC3339))
	return nil
}

// credentialListCommand is `writ credential list [RUN]`.
type credentialListCommand struct {
	state  string
	asJSON bool
}

func (c *credentialListCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.state, "state", "", "only leases in this state: issuing, active, revoked")
	fs.BoolVar(&c.asJSON, "json", false, "print JSON")
}

func (c *credentialListCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) > 1 {
		return usagef("credential list takes at most one run id")
	}
	cl, err := clientFor(e)
	if err != nil {
		return err
	}
	var run string
	switch {
	case len(args) == 1:
		run = args[0]
	case e.getenv("WRIT_RUN_DIR") != "":
		b, err := os.ReadFile(filepath.Join(e.getenv("WRIT_RUN_DIR"), "run"))
		if err != nil {
			return err
		}
		run = strings.TrimSpace(string(b))
	default:
		return usagef("name the run, or set WRIT_RUN_DIR")
	}
	ls, err := cl.ListLeases(ctx, run, c.state)
	if err != nil {
		return err
	}
	if c.asJSON {
		return printJSON(e.stdout, ls)
	}
	if len(ls) == 0 {
		fmt.Fprintln(e.stdout, "no leases")
	}
	for _, l := range ls {
		extra := ""
		switch {
		case l.State == writ.LeaseRevoked:
			extra = " (" + l.RevokeReason + " " + l.RevokedAt.Format(time.RFC3339) + ")"
		case l.LastError != "":
			extra = " (revocation failing: " + l.LastError + ")"
		}
		static := ""
		if l.Static {
			static = " static"
		}
		fmt.Fprintf(e.stdout, "%s  %-8s %-8s %s %s%s  expires %s%s\n", l.ID, l.State, l.Kind, l.Target, strings.Join(l.Permissions, ","), static,
			l.ExpiresAt.Format(time.RFC3339), extra)
	}
	return nil
}

// credentialRevokeCommand is `writ credential revoke LEASE`.
type credentialRevokeCommand struct{ json bool }

func (c *credentialRevokeCommand) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

func (c *credentialRevokeCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("credential revoke takes one lease id")
	}
	cl, err := clientFor(e)
	if err != nil {
		return err
	}
	l, err := cl.RevokeLease(ctx, args[0])
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, l)
	}
	if l.State == writ.LeaseRevoked {
		fmt.Fprintf(e.stdout, "%s revoked\n", l.ID)
	} else {
		fmt.Fprintf(e.stdout, "%s: revocation queued; the backend has not confirmed yet (%s); writ keeps trying\n", l.ID, l.LastError)
	}
	return nil
}
