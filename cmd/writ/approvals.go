package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/approval"
	"github.com/writ-dev/writ/trigger"
)

// approvalsListCommand is `writ approvals list`.
type approvalsListCommand struct {
	state, run string
	asJSON     bool
}

func (c *approvalsListCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.state, "state", "pending", "pending, approved, denied, voided, expired, used, or all")
	fs.StringVar(&c.run, "run", "", "only this run's")
	fs.BoolVar(&c.asJSON, "json", false, "print JSON")
}

func (c *approvalsListCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		return usagef("approvals list takes no arguments")
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	f := writ.ApprovalFilter{State: c.state, Run: writ.RunID(c.run)}
	if f.State == "all" {
		f.State = ""
	}
	as, err := cl.ListApprovals(ctx, f)
	if err != nil {
		return err
	}
	if c.asJSON {
		return printJSON(e.stdout, as)
	}
	if len(as) == 0 {
		fmt.Fprintf(e.stdout, "no %s approvals\n", c.state)
		return nil
	}
	for _, a := range as {
		fmt.Fprintf(e.stdout, "%s  %-8s  %-8s  run %s  %d of %q  expires %s\n", a.ID, a.State, a.SubjectKind, a.Run, a.Count, a.Group, a.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}

// approvalsShowCommand is `writ approvals show ID`: what a human decides on.
type approvalsShowCommand struct{ json bool }

func (c *approvalsShowCommand) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

func (c *approvalsShowCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("approvals show takes one approval id")
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	v, err := cl.GetApproval(ctx, args[0])
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, v)
	}
	w := e.stdout
	fmt.Fprintf(w, "approval %s — %s\n", v.ID, v.State)
	fmt.Fprintf(w, "  needs     %d approver(s) from group %q, before %s\n", v.Count, v.Group, v.ExpiresAt.Format(time.RFC3339))
	fmt.Fprintf(w, "  subject   %s %s\n", v.SubjectKind, v.SubjectDigest)
	keys := make([]string, 0, len(v.Subject))
	for k := range v.Subject {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if s := fmt.Sprint(v.Subject[k]); s != "" && s != "[]" {
			fmt.Fprintf(w, "            %s: %s\n", k, s)
		}
	}
	for _, r := range v.Reasons {
		fmt.Fprintf(w, "  why       %s: %s\n", r.Code, r.Message)
	}
	fmt.Fprintf(w, "  risk      profile %s", v.Risk.Profile)
	if v.Risk.Environment != "" {
		s := "not sensitive"
		if v.Risk.Sensitive {
			s = "SENSITIVE"
		}
		fmt.Fprintf(w, ", environment %s (%s)", v.Risk.Environment, s)
	}
	if v.Risk.Secret != "" {
		fmt.Fprintf(w, ", secret %s", v.Risk.Secret)
	}
	if len(v.Risk.ProtectedPaths) > 0 {
		fmt.Fprintf(w, ", protected paths %s", strings.Join(v.Risk.ProtectedPaths, " "))
	}
	fmt.Fprintln(w)
	if r := v.RunInfo; r != nil {
		fmt.Fprintf(w, "  run       %s (%s, %s) — %s:%s — triggered by %s — %s\n", r.ID, r.Agent, r.Profile, r.Ticket.System, r.Ticket.ID, r.Issuer, r.State)
	}
	for _, g := range v.Grants {
		fmt.Fprintf(w, "  verdict   %s by %s (%s, %s) at %s\n", g.Verdict, g.Human, g.Format, g.KeyID, g.Time.Format(time.RFC3339))
	}
	if a := v.WrittenByAgent; a != nil {
		fmt.Fprintf(w, "  ── %s ──\n", a.Note)
		fmt.Fprintf(w, "  %s\n", string(a.Args))
	}
	if v.State == writ.ApprovalPending {
		fmt.Fprintf(w, "  to decide: writ approvals approve %s --key YOUR.key   (or deny; --ssh-key for an SSH key)\n", v.ID)
	}
	return nil
}

// approvalsStatementCommand is `writ approvals statement ID`: the
// statement to sign out of band.
type approvalsStatementCommand struct{ verdict string }

func (c *approvalsStatementCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.verdict, "verdict", "approve", "approve or deny")
}

func (c *approvalsStatementCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("approvals statement takes one approval id")
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	b, err := cl.ApprovalStatement(ctx, args[0], c.verdict)
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(b)
	return err
}

// approvalsVerdictCommand is `writ approvals approve|deny ID`: verdict is
// which; the statement is signed with the human's own key.
type approvalsVerdictCommand struct {
	verdict                        string
	key, sshKey, sshSig, statement string
}

func (c *approvalsVerdictCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.key, "key", "", "your private key file (Ed25519 or ECDSA P-256, PEM or OpenSSH): signs a DSSE envelope")
	fs.StringVar(&c.sshKey, "ssh-key", "", "your SSH private key: signs with ssh-keygen -Y sign -n writ-approval")
	fs.StringVar(&c.sshSig, "ssh-sig", "", "an armored SSH signature of the statement you made yourself (with --statement)")
	fs.StringVar(&c.statement, "statement", "", "with --ssh-sig: the statement file you signed")
}

func (c *approvalsVerdictCommand) Run(ctx context.Context, e *env, args []string) error {
	verdict := c.verdict
	if len(args) != 1 {
		return usagef("approvals %s takes one approval id", verdict)
	}
	n := 0
	for _, s := range []string{c.key, c.sshKey, c.sshSig} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return usagef("give exactly one of --key, --ssh-key or --ssh-sig")
	}
	if (c.sshSig != "") != (c.statement != "") {
		return usagef("--ssh-sig needs --statement FILE (the statement you signed), and --statement only goes with --ssh-sig")
	}
	id := args[0]
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	var signed []byte
	switch {
	case c.key != "":
		pemBytes, err := os.ReadFile(c.key)
		if err != nil {
			return err
		}
		k, err := trigger.LoadPrivateKey(pemBytes)
		if err != nil {
			return fmt.Errorf("%s: %w", c.key, err)
		}
		st, err := cl.ApprovalStatement(ctx, id, verdict)
		if err != nil {
			return err
		}
		if signed, err = trigger.SignDSSE(st, approval.PayloadType, k); err != nil {
			return err
		}
	case c.sshKey != "":
		st, err := cl.ApprovalStatement(ctx, id, verdict)
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "writ-approval-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		file := filepath.Join(dir, "statement.json")
		if err := os.WriteFile(file, st, 0o600); err != nil {
			return err
		}
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, "ssh-keygen", "-Y", "sign", "-n", approval.SSHNamespace, "-f", c.sshKey, file)
		cmd.Stdin, cmd.Stderr = os.Stdin, &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("ssh-keygen -Y sign: %v: %s", err, strings.TrimSpace(stderr.String()))
		}
		sig, err := os.ReadFile(file + ".sig")
		if err != nil {
			return err
		}
		if signed, err = trigger.WrapSSHSig(st, sig); err != nil {
			return err
		}
	default:
		st, err := os.ReadFile(c.statement)
		if err != nil {
			return err
		}
		sig, err := os.ReadFile(c.sshSig)
		if err != nil {
			return err
		}
		if signed, err = trigger.WrapSSHSig(st, sig); err != nil {
			return err
		}
	}
	a, err := cl.SubmitApproval(ctx, id, verdict, signed)
	if err != nil {
		return err
	}
	approvals := 0
	for _, g := range a.Grants {
		if g.Verdict == approval.Approve {
			approvals++
		}
	}
	fmt.Fprintf(e.stdout, "%s: %s (%d of %d approvals); writ countersigned and logged your signed statement\n", a.ID, a.State, approvals, a.Count)
	return nil
}
