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

type approvalListOpts struct {
	state, run string
	asJSON     bool
}

type verdictOpts struct {
	key, sshKey, sshSig, statement string
}

func init() {
	register(&command{
		name: "approvals list", summary: "list approval requests (pending by default)",
		example: "writ approvals list\nwrit approvals list --state approved --run RUN --json",
		flags: func(fs *flag.FlagSet) any {
			o := &approvalListOpts{}
			fs.StringVar(&o.state, "state", "pending", "pending, approved, denied, voided, expired, used, or all")
			fs.StringVar(&o.run, "run", "", "only this run's")
			fs.BoolVar(&o.asJSON, "json", false, "print JSON")
			return o
		},
		run: runApprovalsList,
	})
	register(&command{
		name: "approvals show", args: "ID", summary: "show what an approval asks, the run, the risk, and what the agent wrote",
		example: "writ approvals show apr_01jd…",
		flags:   func(fs *flag.FlagSet) any { return fs.Bool("json", false, "print JSON") },
		run:     runApprovalsShow,
	})
	register(&command{
		name: "approvals statement", args: "ID", summary: "print the exact statement to sign, for signing out of band (ssh-keygen, a hardware key)",
		example: "writ approvals statement apr_01jd… --verdict approve > st.json\nssh-keygen -Y sign -n writ-approval -f ~/.ssh/id_ed25519 st.json\nwrit approvals approve apr_01jd… --ssh-sig st.json.sig --statement st.json",
		flags:   func(fs *flag.FlagSet) any { return fs.String("verdict", "approve", "approve or deny") },
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			if len(args) != 1 {
				return usagef("approvals statement takes one approval id")
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			b, err := c.ApprovalStatement(ctx, args[0], *opts.(*string))
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(b)
			return err
		},
	})
	for _, verdict := range []string{approval.Approve, approval.Deny} {
		register(&command{
			name: "approvals " + verdict, args: "ID", summary: verdict + " an approval request: sign its statement with your own key and submit it",
			example: "writ approvals " + verdict + " apr_01jd… --key ~/.config/writ/alice.key\nwrit approvals " + verdict + " apr_01jd… --ssh-key ~/.ssh/id_ed25519",
			flags: func(fs *flag.FlagSet) any {
				o := &verdictOpts{}
				fs.StringVar(&o.key, "key", "", "your private key file (Ed25519 or ECDSA P-256, PEM or OpenSSH): signs a DSSE envelope")
				fs.StringVar(&o.sshKey, "ssh-key", "", "your SSH private key: signs with ssh-keygen -Y sign -n writ-approval")
				fs.StringVar(&o.sshSig, "ssh-sig", "", "an armored SSH signature of the statement you made yourself (with --statement)")
				fs.StringVar(&o.statement, "statement", "", "with --ssh-sig: the statement file you signed")
				return o
			},
			run: func(ctx context.Context, e *env, opts any, args []string) error {
				return runVerdict(ctx, e, verdict, opts.(*verdictOpts), args)
			},
		})
	}
}

func runApprovalsList(ctx context.Context, e *env, opts any, args []string) error {
	o := opts.(*approvalListOpts)
	if len(args) > 0 {
		return usagef("approvals list takes no arguments")
	}
	c, err := newClient(e)
	if err != nil {
		return err
	}
	f := writ.ApprovalFilter{State: o.state, Run: writ.RunID(o.run)}
	if f.State == "all" {
		f.State = ""
	}
	as, err := c.ListApprovals(ctx, f)
	if err != nil {
		return err
	}
	if o.asJSON {
		return printJSON(e.stdout, as)
	}
	if len(as) == 0 {
		fmt.Fprintf(e.stdout, "no %s approvals\n", o.state)
		return nil
	}
	for _, a := range as {
		fmt.Fprintf(e.stdout, "%s  %-8s  %-8s  run %s  %d of %q  expires %s\n", a.ID, a.State, a.SubjectKind, a.Run, a.Count, a.Group, a.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}

func runApprovalsShow(ctx context.Context, e *env, opts any, args []string) error {
	if len(args) != 1 {
		return usagef("approvals show takes one approval id")
	}
	c, err := newClient(e)
	if err != nil {
		return err
	}
	v, err := c.GetApproval(ctx, args[0])
	if err != nil {
		return err
	}
	if *opts.(*bool) {
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

func runVerdict(ctx context.Context, e *env, verdict string, o *verdictOpts, args []string) error {
	if len(args) != 1 {
		return usagef("approvals %s takes one approval id", verdict)
	}
	n := 0
	for _, s := range []string{o.key, o.sshKey, o.sshSig} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return usagef("give exactly one of --key, --ssh-key or --ssh-sig")
	}
	if (o.sshSig != "") != (o.statement != "") {
		return usagef("--ssh-sig needs --statement FILE (the statement you signed), and --statement only goes with --ssh-sig")
	}
	id := args[0]
	c, err := newClient(e)
	if err != nil {
		return err
	}
	var signed []byte
	switch {
	case o.key != "":
		pemBytes, err := os.ReadFile(o.key)
		if err != nil {
			return err
		}
		k, err := trigger.LoadPrivateKey(pemBytes)
		if err != nil {
			return fmt.Errorf("%s: %w", o.key, err)
		}
		st, err := c.ApprovalStatement(ctx, id, verdict)
		if err != nil {
			return err
		}
		if signed, err = trigger.SignDSSE(st, approval.PayloadType, k); err != nil {
			return err
		}
	case o.sshKey != "":
		st, err := c.ApprovalStatement(ctx, id, verdict)
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
		cmd := exec.CommandContext(ctx, "ssh-keygen", "-Y", "sign", "-n", approval.SSHNamespace, "-f", o.sshKey, file)
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
		st, err := os.ReadFile(o.statement)
		if err != nil {
			return err
		}
		sig, err := os.ReadFile(o.sshSig)
		if err != nil {
			return err
		}
		if signed, err = trigger.WrapSSHSig(st, sig); err != nil {
			return err
		}
	}
	a, err := c.SubmitApproval(ctx, id, verdict, signed)
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
