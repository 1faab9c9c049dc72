package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/writ-dev/writ"
)

// gitCredentialCommand is `writ git-credential get|store|erase`. It
// speaks git's credential-helper protocol
// (gitcredentials(7), git-credential(1)): key=value lines on stdin, an
// empty line or EOF ending them; for get, key=value lines on stdout. It
// answers only for writ's own git gateway, and only with the path (so git
// needs credential.useHttpPath=true), asking writ for a fresh lease per
// operation. An answer of nothing lets git try its other helpers.
type gitCredentialCommand struct{ noFlags }

func (c *gitCredentialCommand) Run(ctx context.Context, e *env, args []string) error {
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
	cl, run, err := runClient(e, dir)
	if err != nil {
		return err
	}
	repo, ok := gatewayRepo(cl.BaseURL(), in)
	if !ok {
		return nil // not writ's gateway: not ours to answer
	}
	if op == "erase" {
		// git erases a credential the server refused: revoke its lease.
		if id, ok := gitLeaseID(in["password"]); ok && in["username"] == run {
			if _, err := cl.RevokeLease(ctx, id); err != nil {
				fmt.Fprintf(e.stderr, "writ git-credential: revoking %s: %v\n", id, err)
			}
		}
		return nil
	}
	perm := "read"
	if r, err := cl.GetRun(ctx, run); err == nil {
		for _, sr := range r.Scope.Repos {
			if sr.Name == repo && sr.Write {
				perm = "write"
			}
		}
	} else {
		return err
	}
	out, err := cl.RequestCredential(ctx, run, &writ.CredentialRequest{Kind: writ.CredentialGit, Target: repo, Permissions: []string{perm}})
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
