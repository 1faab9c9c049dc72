package server_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/approval"
	"github.com/writ-dev/writ/attest"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/internal/writtest"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/token"
	"github.com/writ-dev/writ/trigger"
)

// approver is a configured human with a key and an API token.
type approver struct {
	name string
	key  crypto.Signer
	c    *client.Client
}

type approvalRig struct {
	*policyRig
	humans map[string]*approver
	clock  *atomic.Int64        // offset added to the real time, in ns
	logs   *writtest.SyncBuffer // the server's log, at debug level
}

// startApprovals starts a dev server with three more humans: bob and carol
// (maintainers) and dave (not a maintainer).
func startApprovals(t testing.TB, mod func(cfg *server.Config)) *approvalRig {
	t.Helper()
	rig := &approvalRig{humans: map[string]*approver{}, clock: new(atomic.Int64), logs: &writtest.SyncBuffer{}}
	keys := map[string]crypto.Signer{}
	d := prepareDev(t)
	for _, h := range []struct {
		name   string
		groups []string
	}{{"bob", []string{"maintainers"}}, {"carol", []string{"maintainers"}}, {"dave", []string{"developers"}}} {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := ssh.NewPublicKey(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		keys[h.name] = k
		d.cfg.Signers = append(d.cfg.Signers, server.SignerConfig{
			Signer: writ.Signer{Name: h.name, Kind: writ.SignerHuman, Groups: h.groups},
			Keys:   []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))},
		})
	}
	// A PostgreSQL database runs may ask roles on (never connected to in
	// these tests: the gated request is decided, not issued).
	t.Setenv("WRIT_TEST_APP_DSN", "postgres://writ@127.0.0.1:1/app?sslmode=disable")
	d.cfg.Broker.Postgres = []server.PGDatabase{{Name: "app", DSNEnv: "WRIT_TEST_APP_DSN", Allow: []string{"read:public"}}}
	if mod != nil {
		mod(&d.cfg)
	}
	now := func() time.Time { return time.Now().Add(time.Duration(rig.clock.Load())) }
	log := slog.New(slog.NewTextHandler(rig.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := start(t, d.cfg, server.Options{Now: now, Logger: log}, d.finish(t))
	rig.policyRig = &policyRig{t: t, d: d, r: r, human: client.New(r.url, d.env.Token)}
	for name, k := range keys {
		tok, err := rig.human.CreateToken(context.Background(), name, 72*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		rig.humans[name] = &approver{name: name, key: k, c: client.New(r.url, tok.Token)}
	}
	rig.humans["dev"] = &approver{name: "dev", key: d.key, c: rig.human}
	return rig
}

// sign fetches who's statement for verdict on id and signs it with key.
func (a *approvalRig) sign(who *approver, key crypto.Signer, id, verdict string) []byte {
	a.t.Helper()
	st, err := who.c.ApprovalStatement(context.Background(), id, verdict)
	if err != nil {
		a.t.Fatal(err)
	}
	env, err := trigger.SignDSSE(st, approval.PayloadType, key)
	if err != nil {
		a.t.Fatal(err)
	}
	return env
}

func (a *approvalRig) approve(who string, id string) (*writ.ApprovalRequest, error) {
	h := a.humans[who]
	return h.c.SubmitApproval(context.Background(), id, approval.Approve, a.sign(h, h.key, id, approval.Approve))
}

// pgCredential is a gated action whose approval binds to the action's
// digest (a tool subject): a release run asking for a database role.
func pgCredential(role string) writ.Action {
	return writ.Action{Kind: writ.ActionCredential, Name: "postgres", Args: json.RawMessage(`{"target":"app","permissions":["read:public"],"role":"` + role + `"}`)}
}

// TestApprovalAttacks: every way to approve without being entitled to is
// refused, on the record, and changes nothing.
func TestApprovalAttacks(t *testing.T) {
	a := startApprovals(t, nil)
	ctx := context.Background()
	self, id := a.run(releaseRun)
	d := a.decide(self, pgCredential("read"))
	if d.Decision != writ.VerdictApprovalRequired || d.Approval == nil {
		t.Fatalf("gated action: %+v", d)
	}
	apr := d.Approval.ID
	bob, carol, dave, dev := a.humans["bob"], a.humans["carol"], a.humans["dave"], a.humans["dev"]
	attacks := []struct {
		name string
		do   func() error
		code string
	}{
		{"the trigger's signer approves its own run", func() error { _, err := a.approve("dev", apr); return err }, "separation_of_duties"},
		{"the run approves itself with its token", func() error {
			_, err := self.SubmitApproval(ctx, apr, approval.Approve, a.sign(bob, bob.key, apr, approval.Approve))
			return err
		}, "human_only"},
		{"an API token without a signature", func() error {
			_, err := bob.c.SubmitApproval(ctx, apr, approval.Approve, []byte(`{"approve": true}`))
			return err
		}, "malformed_envelope"},
		{"bob's token, carol's key", func() error {
			_, err := bob.c.SubmitApproval(ctx, apr, approval.Approve, a.sign(bob, carol.key, apr, approval.Approve))
			return err
		}, "key_not_yours"},
		{"an unknown key", func() error {
			_, k, _ := ed25519.GenerateKey(rand.Reader)
			_, err := bob.c.SubmitApproval(ctx, apr, approval.Approve, a.sign(bob, k, apr, approval.Approve))
			return err
		}, "unknown_signer"},
		{"carol's statement under bob's token", func() error {
			_, err := bob.c.SubmitApproval(ctx, apr, approval.Approve, a.sign(carol, carol.key, apr, approval.Approve))
			return err
		}, "key_not_yours"},
		{"a signed denial replayed as an approval", func() error {
			_, err := bob.c.SubmitApproval(ctx, apr, approval.Approve, a.sign(bob, bob.key, apr, approval.Deny))
			return err
		}, "statement_mismatch"},
		{"a human outside the required group", func() error { _, err := a.approve("dave", apr); return err }, "not_in_group"},
		{"a statement edited after signing", func() error {
			st, _ := bob.c.ApprovalStatement(ctx, apr, approval.Approve)
			st = []byte(strings.Replace(string(st), `"count"`, `"Count"`, 1))
			st = []byte(strings.Replace(string(st), apr, strings.Replace(apr, "apr_", "apr_", 1), 1))
			env, _ := trigger.SignDSSE(append(st, ' '), approval.PayloadType, bob.key)
			_, err := bob.c.SubmitApproval(ctx, apr, approval.Approve, env)
			return err
		}, "statement_mismatch"},
	}
	for _, at := range attacks {
		t.Run(at.name, func(t *testing.T) {
			err := at.do()
			if writ.ErrorCode(err) != at.code {
				t.Fatalf("got %v, want %s", err, at.code)
			}
			got, err := dev.c.GetApproval(ctx, apr)
			if err != nil || got.State != writ.ApprovalPending || len(got.Grants) != 0 {
				t.Fatalf("the approval changed: %+v %v", got, err)
			}
		})
	}
	refused := 0
	for _, e := range storeEvents(t, a.r.srv.Store()) {
		if e.Type == writ.EventApprovalRefused && e.Subject == apr {
			refused++
		}
	}
	// Every refusal of an authenticated human is on record (the run's own
	// attempt never reached the approval service: its token is refused at
	// the route).
	if refused != len(attacks)-1 {
		t.Fatalf("%d approval.refused events, want %d", refused, len(attacks)-1)
	}
	// The gated action is still refused.
	if d := a.decide(self, pgCredential("read")); d.Decision != writ.VerdictApprovalRequired || d.Approval.ID != apr {
		t.Fatalf("gated action after the attacks: %+v", d)
	}
	_ = dave
	_ = id
}

// TestApprovalFlow: a human approves exactly the subject; the gated action
// is then allowed once, after the approval in the log; a changed subject
// voids the approval; expiry refuses; two approvers must be two humans.
func TestApprovalFlow(t *testing.T) {
	a := startApprovals(t, nil)
	ctx := context.Background()
	self, id := a.run(releaseRun)

	d := a.decide(self, pgCredential("read"))
	apr := d.Approval.ID
	got, err := a.approve("bob", apr)
	if err != nil || got.State != writ.ApprovalApproved {
		t.Fatalf("bob approves: %+v %v", got, err)
	}
	if _, err := a.approve("carol", apr); writ.ErrorCode(err) != "approval_not_pending" {
		t.Fatalf("a verdict on an approved request: %v", err)
	}
	// Exactly the approved action is allowed, once.
	allowed := a.decide(self, pgCredential("read"))
	if allowed.Decision != writ.VerdictAllow || !hasCode(allowed.Reasons, "approved") || allowed.Approval == nil || allowed.Approval.ID != apr {
		t.Fatalf("the approved action: %+v", allowed)
	}
	again := a.decide(self, pgCredential("read"))
	if again.Decision != writ.VerdictApprovalRequired || again.Approval.ID == apr {
		t.Fatalf("the approval was used twice: %+v", again)
	}
	// The log has the approval before the action it allowed, and writ's
	// countersignature verifies with the attest key.
	var granted, allowedAt, requested int = -1, -1, -1
	for i, e := range storeEvents(t, a.r.srv.Store()) {
		switch {
		case e.Type == writ.EventApprovalRequested && e.Subject == apr:
			requested = i
		case e.Type == writ.EventApprovalGranted && e.Subject == apr:
			granted = i
			cs, _ := json.Marshal(e.Details["countersignature"])
			st, _, err := attest.Verify(cs, a.attestKey(t))
			if err != nil || st.PredicateType != attest.PredicateApproval {
				t.Fatalf("countersignature: %v %+v", err, st)
			}
		case e.Type == writ.EventDecision && e.Subject == allowed.ID:
			allowedAt = i
		}
	}
	if !(requested >= 0 && requested < granted && granted < allowedAt) {
		t.Fatalf("log order: requested %d, granted %d, allowed %d", requested, granted, allowedAt)
	}

	// Approve, then change the subject: the approval is voided and the
	// changed action is refused.
	second := again.Approval.ID
	if _, err := a.approve("carol", second); err != nil {
		t.Fatal(err)
	}
	changed := a.decide(self, pgCredential("admin"))
	if changed.Decision != writ.VerdictApprovalRequired || changed.Approval.ID == second {
		t.Fatalf("a changed subject: %+v", changed)
	}
	if v, _ := a.human.GetApproval(ctx, second); v.State != writ.ApprovalVoided {
		t.Fatalf("the approval of the old subject is %s, want voided", v.State)
	}
	if d := a.decide(self, pgCredential("read")); d.Decision != writ.VerdictApprovalRequired {
		t.Fatalf("the voided approval still allows: %+v", d)
	}

	// Expiry: an approval past its expiry is refused and expired.
	pending := a.decide(self, pgCredential("write")).Approval.ID
	a.clock.Add(int64(25 * time.Hour))
	if _, err := a.approve("bob", pending); writ.ErrorCode(err) != "approval_expired" && writ.ErrorCode(err) != "approval_not_pending" {
		t.Fatalf("approving an expired request: %v", err)
	}
	if v, err := a.humans["carol"].c.GetApproval(ctx, pending); err != nil || v.State != writ.ApprovalExpired {
		t.Fatalf("expired request: %+v %v", v, err)
	}
	_ = id
}

// TestTwoDistinctApprovers: a release to a sensitive environment needs two
// humans; the same human twice does not count twice.
func TestTwoDistinctApprovers(t *testing.T) {
	a := startApprovals(t, nil)
	self, _ := a.run(releaseRun)
	rel := writ.Action{Kind: writ.ActionRelease, Target: writ.Target{Repo: "acme/api", Digest: "sha256:" + strings.Repeat("cd", 32), Environment: "production"}}
	d := a.decide(self, rel)
	if d.Decision != writ.VerdictApprovalRequired || d.Approval.Count != 2 {
		t.Fatalf("release to production: %+v", d)
	}
	apr := d.Approval.ID
	if got, err := a.approve("bob", apr); err != nil || got.State != writ.ApprovalPending {
		t.Fatalf("first approver: %+v %v", got, err)
	}
	if _, err := a.approve("bob", apr); writ.ErrorCode(err) != "already_signed" {
		t.Fatalf("bob twice: %v", err)
	}
	if d := a.decide(self, rel); d.Decision != writ.VerdictApprovalRequired || d.Approval.ID != apr {
		t.Fatalf("with one of two approvals: %+v", d)
	}
	if got, err := a.approve("carol", apr); err != nil || got.State != writ.ApprovalApproved {
		t.Fatalf("second approver: %+v %v", got, err)
	}
	if d := a.decide(self, rel); d.Decision != writ.VerdictAllow {
		t.Fatalf("with two approvals: %+v", d)
	}
}

// TestApprovalDenied: one signed denial closes the request; the action
// stays refused and a new request is opened next time.
func TestApprovalDenied(t *testing.T) {
	a := startApprovals(t, nil)
	self, _ := a.run(releaseRun)
	apr := a.decide(self, pgCredential("read")).Approval.ID
	bob := a.humans["bob"]
	got, err := bob.c.SubmitApproval(context.Background(), apr, approval.Deny, a.sign(bob, bob.key, apr, approval.Deny))
	if err != nil || got.State != writ.ApprovalDenied {
		t.Fatalf("deny: %+v %v", got, err)
	}
	if _, err := a.approve("carol", apr); writ.ErrorCode(err) != "approval_not_pending" {
		t.Fatalf("approving a denied request: %v", err)
	}
	if d := a.decide(self, pgCredential("read")); d.Decision != writ.VerdictApprovalRequired || d.Approval.ID == apr {
		t.Fatalf("after a denial: %+v", d)
	}
}

func (a *approvalRig) attestKey(t *testing.T) *ecdsa.PublicKey {
	t.Helper()
	keys, err := server.LoadKeys(a.d.cfg.Keys)
	if err != nil {
		t.Fatal(err)
	}
	return &keys.Attest.PublicKey
}

// TestApprovalVoidedByPolicyChange: an approval asked under one policy
// bundle cannot be given, nor used, under another.
func TestApprovalVoidedByPolicyChange(t *testing.T) {
	dir := t.TempDir()
	copyDefault(t, dir)
	a := startApprovals(t, func(cfg *server.Config) { cfg.Policy.Bundle = dir })
	ctx := context.Background()
	self, _ := a.run(releaseRun)
	apr := a.decide(self, pgCredential("read")).Approval.ID
	if err := os.WriteFile(filepath.Join(dir, "extra.rego"), []byte("package writ\n\n# a new rule: the policy changed\nalerts contains \"moon\" if input.action.target.environment == \"moon\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := a.r.srv.PolicyDigest()
	if err := a.r.srv.ReloadPolicy(ctx); err != nil || a.r.srv.PolicyDigest() == old {
		t.Fatalf("reload: %v", err)
	}
	if _, err := a.approve("bob", apr); writ.ErrorCode(err) != "policy_changed" {
		t.Fatalf("approving under a new policy: %v", err)
	}
	if v, _ := a.human.GetApproval(ctx, apr); v.State != writ.ApprovalVoided {
		t.Fatalf("request is %s, want voided", v.State)
	}
	d := a.decide(self, pgCredential("read"))
	if d.Decision != writ.VerdictApprovalRequired || d.Approval.ID == apr {
		t.Fatalf("after the policy change: %+v", d)
	}
	// An approval given, then a policy change before use: voided at use.
	if _, err := a.approve("bob", d.Approval.ID); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "extra.rego"), []byte("package writ\n\n# changed again\nalerts contains \"mars\" if input.action.target.environment == \"mars\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.r.srv.ReloadPolicy(ctx); err != nil {
		t.Fatal(err)
	}
	if d2 := a.decide(self, pgCredential("read")); d2.Decision != writ.VerdictApprovalRequired {
		t.Fatalf("an approval from before the policy change allowed: %+v", d2)
	}
	if v, _ := a.human.GetApproval(ctx, d.Approval.ID); v.State != writ.ApprovalVoided {
		t.Fatalf("approved request is %s after the policy changed, want voided", v.State)
	}
}

// BenchmarkApprovalToAllow measures, on one node, the time from the last
// required approval to the gated action being allowed: the approving
// human's POST (verify, countersign, commit) and the run's next decision,
// which finds and consumes the approval.
func BenchmarkApprovalToAllow(b *testing.B) {
	a := startApprovals(b, func(cfg *server.Config) {
		for _, p := range cfg.Profiles {
			p.Budgets = writ.Budgets{}
		}
	})
	self, _ := a.run(releaseRun)
	var approve, allow []time.Duration
	for i := 0; b.Loop(); i++ {
		act := pgCredential(fmt.Sprintf("role%d", i))
		d := a.decide(self, act)
		if d.Approval == nil {
			b.Fatalf("not gated: %+v", d)
		}
		t0 := time.Now()
		if _, err := a.approve("bob", d.Approval.ID); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if d := a.decide(self, act); d.Decision != writ.VerdictAllow {
			b.Fatalf("not allowed: %+v", d)
		}
		approve, allow = append(approve, t1.Sub(t0)), append(allow, time.Since(t1))
	}
	report := func(name string, ds []time.Duration) {
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), name+"-p50-µs")
		b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), name+"-p99-µs")
	}
	report("approve", approve)
	report("allow", allow)
}

// TestScopeApproval: a gate on a delegation (a scope subject) through the
// same approval service: the exact delegation asked is allowed once after
// a human approves it; another scope in the same slot voids the approval.
func TestScopeApproval(t *testing.T) {
	dir := t.TempDir()
	copyDefault(t, dir)
	// This installation wants a human to approve every delegation of dev's
	// runs (the bundle's own tests decide as alice, so they still pass).
	rule := "package writ\n\napproval contains ask(\"delegation_review\", \"a human approves every delegation of dev's runs\", 1) if {\n\tinput.action.kind == \"delegate\"\n\tinput.run.issuer == \"dev\"\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "delegation.rego"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startApprovals(t, func(cfg *server.Config) { cfg.Policy.Bundle = dir })
	ctx := context.Background()
	key, err := token.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	run, err := client.New(a.r.url, "").StartRun(ctx, a.d.sign(t, time.Now(), nil), key)
	if err != nil {
		t.Fatal(err)
	}
	parent := client.NewRun(a.r.url, run.Token, key)
	review := func(paths ...string) *client.DelegateRequest {
		return &client.DelegateRequest{Agent: "review-bot", Profile: "review", Scope: &writ.Scope{
			Repos: []writ.RepoScope{{Name: "acme/api", Base: "main", Paths: paths}}, Tools: []string{"read"}, MaxDuration: writ.Duration(10 * time.Minute)}}
	}
	gated := func(req *client.DelegateRequest) string {
		t.Helper()
		_, err := parent.Delegate(ctx, string(run.ID), req)
		var we *writ.Error
		if !errors.As(err, &we) || we.Kind != writ.KindApprovalPending || we.Code != "approval_required" || !strings.HasPrefix(we.Approval, "apr_") {
			t.Fatalf("delegation without approval: %v", err)
		}
		return we.Approval
	}
	apr := gated(review("src/**"))
	if v, err := a.human.GetApproval(ctx, apr); err != nil || v.SubjectKind != writ.SubjectScope {
		t.Fatalf("approval subject: %+v %v", v, err)
	}
	if _, err := a.approve("bob", apr); err != nil {
		t.Fatal(err)
	}
	child, err := parent.Delegate(ctx, string(run.ID), review("src/**"))
	if err != nil {
		t.Fatalf("the approved delegation: %v", err)
	}
	if child.Run.Parent != run.ID {
		t.Fatalf("child: %+v", child.Run)
	}
	// Single use: the same delegation again waits for a new approval.
	second := gated(review("src/**"))
	if second == apr {
		t.Fatal("the used approval was reused")
	}
	if _, err := a.approve("carol", second); err != nil {
		t.Fatal(err)
	}
	// Another scope is another subject in the same slot: the approval of
	// the first is voided, and the new one waits.
	third := gated(review("docs/**"))
	if third == second {
		t.Fatal("an approval of one scope covered another")
	}
	if v, _ := a.human.GetApproval(ctx, second); v.State != writ.ApprovalVoided {
		t.Fatalf("the approval of the old scope is %s, want voided", v.State)
	}
}
