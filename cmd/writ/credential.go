package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/writ-dev/writ"
)

type credentialGetOpts struct {
	kind, target, field string
	perms               stringList
	ttl                 time.Duration
	asJSON              bool
}

func init() {
	register(&command{
		name: "credential get", summary: "ask for a credential for the run in WRIT_RUN_DIR (policy decides; it is a lease revoked when the run stops)",
		example: "writ credential get --kind git --target acme/api --permission write\n" +
			"writ credential get --kind postgres --target app --permission read:public --field dsn\n" +
			"writ credential get --kind secret --target production/stripe-key --field value   # after a human approved it",
		flags: func(fs *flag.FlagSet) any {
			o := &credentialGetOpts{}
			fs.StringVar(&o.kind, "kind", "", "the credential kind: git, secret, postgres, vault, github")
			fs.StringVar(&o.target, "target", "", "what it is for: a repo (owner/repo), a secret (environment/name), a database, a Vault path")
			fs.Var(&o.perms, "permission", "a permission (repeat): read, write, read:<schema>, issues:write, …")
			fs.DurationVar(&o.ttl, "ttl", 0, "how long it should live (default and cap: what policy allows, never past the run's deadline)")
			fs.StringVar(&o.field, "field", "", "print only this field of the credential (password, token, value, dsn, …)")
			fs.BoolVar(&o.asJSON, "json", false, "print the lease and the credential as JSON")
			return o
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			return runCredentialGet(ctx, e, opts.(*credentialGetOpts), args)
		},
	})
	register(&command{
		name: "credential list", args: "[RUN]", summary: "list a run's leases (the run in WRIT_RUN_DIR, or RUN for a human)",
		example: "writ credential list 01jd0000000000000000000000\nwrit credential list --state active",
		flags: func(fs *flag.FlagSet) any {
			o := &struct {
				state  string
				asJSON bool
			}{}
			fs.StringVar(&o.state, "state", "", "only leases in this state: issuing, active, revoked")
			fs.BoolVar(&o.asJSON, "json", false, "print JSON")
			return o
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			o := opts.(*struct {
				state  string
				asJSON bool
			})
			return runCredentialList(ctx, e, o.state, o.asJSON, args)
		},
	})
	register(&command{
		name: "credential revoke", args: "LEASE", summary: "revoke a lease now (the run that holds it, or an admin)",
		example: "writ credential revoke lse_01jd0000000000000000000000",
		flags:   jsonFlag,
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			if len(args) != 1 {
				return usagef("credential revoke takes one lease id")
			}
			c, err := clientFor(e)
			if err != nil {
				return err
			}
			l, err := c.RevokeLease(ctx, args[0])
			if err != nil {
				return err
			}
			if *opts.(*bool) {
				return printJSON(e.stdout, l)
			}
			if l.State == writ.LeaseRevoked {
				fmt.Fprintf(e.stdout, "%s revoked\n", l.ID)
			} else {
				fmt.Fprintf(e.stdout, "%s: revocation queued; the backend has not confirmed yet (%s); writ keeps trying\n", l.ID, l.LastError)
			}
			return nil
		},
	})
	register(&command{
		name: "git-credential", args: "get|store|erase", summary: "git's credential helper: fetches a fresh git credential of the run in WRIT_RUN_DIR per operation",
		example: "git -c credential.helper='!writ git-credential' -c credential.useHttpPath=true clone http://127.0.0.1:7300/git/acme/api.git\n" +
			"# the launcher (writ run) sets this up through GIT_CONFIG_COUNT/GIT_CONFIG_KEY_n/GIT_CONFIG_VALUE_n",
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			return runGitCredential(ctx, e, args)
		},
	})
	register(&command{
		name: "secret put", args: "ENV/NAME", summary: "store a static secret (admins); the value is read from stdin or --from-file, never from the command line",
		example: "printf %s \"$STRIPE_KEY\" | writ secret put production/stripe-key\nwrit secret put staging/db-password --from-file ./pw.txt",
		flags: func(fs *flag.FlagSet) any {
			f := new(string)
			fs.StringVar(f, "from-file", "", "read the value from this file instead of stdin")
			return f
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			return runSecretPut(ctx, e, *opts.(*string), args)
		},
	})
	register(&command{
		name: "secret list", summary: "list static secrets: names and versions, never values (admins)",
		example: "writ secret list",
		flags:   jsonFlag,
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			list, err := c.ListSecrets(ctx)
			if err != nil {
				return err
			}
			if *opts.(*bool) {
				return printJSON(e.stdout, list)
			}
			if len(list) == 0 {
				fmt.Fprintln(e.stdout, "no secrets")
			}
			for _, s := range list {
				fmt.Fprintf(e.stdout, "%s/%s  v%d  %s by %s\n", s.Environment, s.Name, s.Version, s.UpdatedAt.Format(time.RFC3339), s.UpdatedBy)
			}
			return nil
		},
	})
	register(&command{
		name: "secret rm", args: "ENV/NAME", summary: "remove a static secret (admins)",
		example: "writ secret rm staging/db-password",
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			if len(args) != 1 {
				return usagef("secret rm takes one ENV/NAME")
			}
			env, name, ok := strings.Cut(args[0], "/")
			if !ok {
				return usagef("name the secret as ENV/NAME, such as staging/db-password")
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			if err := c.DeleteSecret(ctx, env, name); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s removed\n", args[0])
			return nil
		},
	})
}

func jsonFlag(fs *flag.FlagSet) any {
	b := new(bool)
	fs.BoolVar(b, "json", false, "print JSON")
	return b
}

// runDir returns WRIT_RUN_DIR or a usage error naming the command.
func runDir(e *env, what string) (string, error) {
	dir := e.getenv("WRIT_RUN_DIR")
	if dir == "" {
		return "", usagef("%s acts as a run: set WRIT_RUN_DIR to its directory (writ run sets it beside the agent)", what)
	}
	return dir, nil
}

func runCredentialGet(ctx context.Context, e *env, o *credentialGetOpts, args []string) error {
	if len(args) != 0 {
		return usagef("credential get takes flags only")
	}
	if o.kind == "" || o.target == "" {
		return usagef("give --kind and --target")
	}
	dir, err := runDir(e, "credential get")
	if err != nil {
		return err
	}
	c, run, err := runClient(e, dir)
	if err != nil {
		return err
	}
	out, err := c.RequestCredential(ctx, run, &writ.CredentialRequest{Kind: o.kind, Target: o.target, Permissions: o.perms, TTL: writ.Duration(o.ttl)})
	if err != nil {
		return err
	}
	switch {
	case o.asJSON:
		return printJSON(e.stdout, out)
	case o.field != "":
		v, ok := out.Credential[o.field]
		if !ok {
			keys := make([]string, 0, len(out.Credential))
			for k := range out.Credential {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			return fmt.Errorf("the credential has no field %q (it has: %s); lease %s stays until it expires or is revoked", o.field, strings.Join(keys, ", "), out.Lease.ID)
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

func runCredentialList(ctx context.Context, e *env, state string, asJSON bool, args []string) error {
	if len(args) > 1 {
		return usagef("credential list takes at most one run id")
	}
	c, err := clientFor(e)
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
	ls, err := c.ListLeases(ctx, run, state)
	if err != nil {
		return err
	}
	if asJSON {
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

func runSecretPut(ctx context.Context, e *env, from string, args []string) error {
	if len(args) != 1 {
		return usagef("secret put takes one ENV/NAME; the value comes from stdin or --from-file")
	}
	env, name, ok := strings.Cut(args[0], "/")
	if !ok {
		return usagef("name the secret as ENV/NAME, such as production/stripe-key")
	}
	var value []byte
	var err error
	if from != "" {
		value, err = os.ReadFile(from)
	} else {
		if e.stdin == nil {
			return usagef("pipe the value on stdin, or give --from-file")
		}
		value, err = io.ReadAll(io.LimitReader(e.stdin, 1<<20))
	}
	if err != nil {
		return err
	}
	c, err := newClient(e)
	if err != nil {
		return err
	}
	v, err := c.PutSecret(ctx, env, name, value)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s stored (version %d)\n", args[0], v)
	return nil
}

// runGitCredential speaks git's credential-helper protocol
// (gitcredentials(7), git-credential(1)): key=value lines on stdin, an
// empty line or EOF ending them; for get, key=value lines on stdout. It
// answers only for writ's own git gateway, and only with the path (so git
// needs credential.useHttpPath=true), asking writ for a fresh lease per
// operation. An answer of nothing lets git try its other helpers.
func runGitCredential(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("git-credential takes one operation: get, store or erase")
	}
	op := args[0]
	if op != "get" && op != "store" && op != "erase" {
		// git-credential(1): helpers ignore operations they do not know.
		return nil
	}
	in := map[string]string{}
	if e.stdin != nil {
		sc := bufio.NewScanner(io.LimitReader(e.stdin, 1<<20))
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				break
			}
			k, v, ok := strings.Cut(line, "=")
			if ok {
				in[k] = v
			}
		}
	}
	if op == "store" {
		return nil // writ's credentials are fetched fresh, never stored
	}
	dir, err := runDir(e, "git-credential")
	if err != nil {
		return err
	}
	c, run, err := runClient(e, dir)
	if err != nil {
		return err
	}
	repo, ok := gatewayRepo(c.BaseURL(), in)
	if !ok {
		return nil // not writ's gateway: not ours to answer
	}
	if op == "erase" {
		// git erases a credential the server refused: revoke its lease.
		if id, ok := gitLeaseID(in["password"]); ok && in["username"] == run {
			if _, err := c.RevokeLease(ctx, id); err != nil {
				fmt.Fprintf(e.stderr, "writ git-credential: revoking %s: %v\n", id, err)
			}
		}
		return nil
	}
	perm := "read"
	if r, err := c.GetRun(ctx, run); err == nil {
		for _, sr := range r.Scope.Repos {
			if sr.Name == repo && sr.Write {
				perm = "write"
			}
		}
	} else {
		return err
	}
	out, err := c.RequestCredential(ctx, run, &writ.CredentialRequest{Kind: writ.CredentialGit, Target: repo, Permissions: []string{perm}})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "username=%s\npassword=%s\n", out.Credential["username"], out.Credential["password"])
	fmt.Fprintf(e.stdout, "password_expiry_utc=%d\n", out.Lease.ExpiresAt.Unix())
	return nil
}

// gatewayRepo returns the repo a credential request of git is for, when
// it is for writ's git gateway at base (same scheme, host and port; path
// git/OWNER/REPO.git).
func gatewayRepo(base string, in map[string]string) (string, bool) {
	u, err := url.Parse(base)
	if err != nil || in["protocol"] != u.Scheme || !strings.EqualFold(in["host"], u.Host) {
		return "", false
	}
	p := strings.TrimPrefix(in["path"], strings.TrimPrefix(u.Path, "/"))
	p = strings.TrimPrefix(p, "/")
	rest, ok := strings.CutPrefix(p, "git/")
	if !ok {
		return "", false
	}
	rest = strings.TrimSuffix(rest, "/")
	rest = strings.TrimSuffix(rest, ".git")
	// Smart-HTTP paths may go on past the repository (info/refs, …).
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) < 2 {
		return "", false
	}
	repo := parts[0] + "/" + strings.TrimSuffix(parts[1], ".git")
	if !writ.ValidRepoName(repo) {
		return "", false
	}
	return repo, true
}

// gitLeaseID returns the lease id inside a writ git credential.
func gitLeaseID(password string) (string, bool) {
	rest, ok := strings.CutPrefix(password, "writ_git_")
	if !ok || len(rest) < 27 || rest[26] != '_' {
		return "", false
	}
	return "lse_" + rest[:26], true
}
