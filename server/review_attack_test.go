package server_test

// Security review of the approval gate, the approval service and
// delegation (docs/design.md §4.2–§4.5, docs/threat-model.md C-AP1..C-AP3, INV-4, INV-6),
// as an attacker would try them. A test that demonstrates a bug is skipped
// with the bug's description, so the suite stays green until it is fixed:
// run with WRIT_REVIEW_BUGS=1 to see it fail.

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/approval"
	"github.com/writ-dev/writ/client"
)

// reviewDigest is an artifact digest the release run ships in these tests.
var reviewDigest = "sha256:" + strings.Repeat("ef", 32)

// TestReviewArtifactApprovalCrossesActionKinds: a human approves the
// release of an artifact to staging; the run then deploys the same digest
// to staging, and the approval of the release allows the deploy. C-AP1
// binds an approval to the action; the artifact subject binds only
// digest, environment and repo.
func TestReviewArtifactApprovalCrossesActionKinds(t *testing.T) {
	a := startApprovals(t, nil)
	self, _ := a.run(releaseRun)
	rel := writ.Action{Kind: writ.ActionRelease, Target: writ.Target{Repo: "acme/api", Digest: reviewDigest, Environment: "staging"}}
	dep := rel
	dep.Kind = writ.ActionDeploy

	d := a.decide(self, rel)
	if d.Decision != writ.VerdictApprovalRequired || d.Approval == nil {
		t.Fatalf("release to staging: %+v", d)
	}
	if _, err := a.approve("bob", d.Approval.ID); err != nil {
		t.Fatal(err)
	}
	got := a.decide(self, dep)
	if got.Decision == writ.VerdictAllow {
		t.Fatalf("bob approved a release of %s, and the run deployed it with that approval: %+v", reviewDigest, got)
	}
	// The release itself still has its approval.
	if r := a.decide(self, rel); r.Decision != writ.VerdictAllow {
		t.Fatalf("the approved release: %+v", r)
	}
}

// TestReviewSecretApprovalCrossesCredentialKinds: a human approves handing
// secret deploy/token (staging) to the run as a "secret" credential; the
// run then asks for a "vault" credential naming the same secret, and the
// approval covers it.
func TestReviewSecretApprovalCrossesCredentialKinds(t *testing.T) {
	a := startApprovals(t, nil)
	self, _ := a.run(releaseRun)
	tgt := writ.Target{Secret: "deploy/token", Environment: "staging"}
	asked := writ.Action{Kind: writ.ActionCredential, Name: "secret", Target: tgt}
	d := a.decide(self, asked)
	if d.Decision != writ.VerdictApprovalRequired || d.Approval == nil {
		t.Fatalf("secret: %+v", d)
	}
	if _, err := a.approve("bob", d.Approval.ID); err != nil {
		t.Fatal(err)
	}
	other := writ.Action{Kind: writ.ActionCredential, Name: "vault", Args: json.RawMessage(`{"policy":"root"}`), Target: tgt}
	if got := a.decide(self, other); got.Decision == writ.VerdictAllow {
		t.Fatalf("an approval of the %q credential allowed a %q credential with other arguments: %+v", asked.Name, other.Name, got)
	}
}

// TestReviewSecretApprovalIgnoresArgs: the same gap within one credential
// kind: an approved postgres credential with role "read" for secret
// deploy/db allows role "admin".
func TestReviewSecretApprovalIgnoresArgs(t *testing.T) {
	a := startApprovals(t, nil)
	self, _ := a.run(releaseRun)
	cred := func(role string) writ.Action {
		act := pgCredential(role)
		act.Target = writ.Target{Secret: "deploy/db", Environment: "staging"}
		return act
	}
	d := a.decide(self, cred("read"))
	if d.Decision != writ.VerdictApprovalRequired || d.Approval == nil {
		t.Fatalf("postgres read: %+v", d)
	}
	if _, err := a.approve("bob", d.Approval.ID); err != nil {
		t.Fatal(err)
	}
	if got := a.decide(self, cred("admin")); got.Decision == writ.VerdictAllow {
		t.Fatalf("an approval of role read allowed role admin: %+v", got)
	}
}

// TestReviewAdvisoryHookConsumesApproval: a hook's decision is advisory
// (docs/design.md §4.4) and enforces nothing, yet it uses the single-use
// approval; the enforcing decision of the same action that follows finds
// it used and opens a new request, so the human's approval never reaches
// the action it was given for (and the agent, through its hook or a
// made-up via "hook:x", can burn approvals at will).
func TestReviewAdvisoryHookConsumesApproval(t *testing.T) {
	a := startApprovals(t, nil)
	self, _ := a.run(releaseRun)
	act := pgCredential("read")
	apr := a.decide(self, act).Approval.ID
	if _, err := a.approve("bob", apr); err != nil {
		t.Fatal(err)
	}
	hook, err := self.Decide(context.Background(), &client.DecideRequest{Action: act, Via: "hook:claude-code", CallRef: "toolu_review_1"})
	if err != nil {
		t.Fatal(err)
	}
	if hook.Decision != writ.VerdictAllow {
		t.Fatalf("advisory decision of the approved action: %+v", hook)
	}
	if d := a.decide(self, act); d.Decision != writ.VerdictAllow {
		t.Fatalf("the enforcing decision after an advisory one found no approval: %+v", d)
	}
}

// TestReviewApprovalBoundToRun: an approval of one run does not serve
// another run of the same issuer asking the same action (regression).
func TestReviewApprovalBoundToRun(t *testing.T) {
	a := startApprovals(t, nil)
	first, _ := a.run(releaseRun)
	second, _ := a.run(releaseRun)
	act := pgCredential("read")
	apr := a.decide(first, act).Approval.ID
	if _, err := a.approve("bob", apr); err != nil {
		t.Fatal(err)
	}
	d := a.decide(second, act)
	if d.Decision != writ.VerdictApprovalRequired || d.Approval == nil || d.Approval.ID == apr {
		t.Fatalf("another run used run one's approval: %+v", d)
	}
	if d := a.decide(first, act); d.Decision != writ.VerdictAllow || d.Approval.ID != apr {
		t.Fatalf("run one's own approval: %+v", d)
	}
}

// TestReviewStatementOfAnotherApproval: bob's signed approval statement of
// one request, submitted for another, is refused (regression).
func TestReviewStatementOfAnotherApproval(t *testing.T) {
	a := startApprovals(t, nil)
	self, _ := a.run(releaseRun)
	one := a.decide(self, pgCredential("read")).Approval.ID
	two := a.decide(self, pgCredential("write")).Approval.ID
	bob := a.humans["bob"]
	_, err := bob.c.SubmitApproval(context.Background(), two, approval.Approve, a.sign(bob, bob.key, one, approval.Approve))
	if writ.ErrorCode(err) != "statement_mismatch" {
		t.Fatalf("a statement of %s submitted for %s: %v", one, two, err)
	}
	if v, _ := a.human.GetApproval(context.Background(), two); v.State != writ.ApprovalPending || len(v.Grants) != 0 {
		t.Fatalf("request changed: %+v", v)
	}
}

// TestReviewDenialNeverCounts: in a two-of-M request, bob approves and
// carol denies: the request is denied, not approved, and the action stays
// refused (regression).
func TestReviewDenialNeverCounts(t *testing.T) {
	a := startApprovals(t, nil)
	self, _ := a.run(releaseRun)
	rel := writ.Action{Kind: writ.ActionRelease, Target: writ.Target{Repo: "acme/api", Digest: reviewDigest, Environment: "production"}}
	apr := a.decide(self, rel).Approval.ID
	if _, err := a.approve("bob", apr); err != nil {
		t.Fatal(err)
	}
	carol := a.humans["carol"]
	got, err := carol.c.SubmitApproval(context.Background(), apr, approval.Deny, a.sign(carol, carol.key, apr, approval.Deny))
	if err != nil || got.State != writ.ApprovalDenied {
		t.Fatalf("carol's denial: %+v %v", got, err)
	}
	if d := a.decide(self, rel); d.Decision == writ.VerdictAllow || d.Approval.ID == apr {
		t.Fatalf("a denial counted toward approval: %+v", d)
	}
}

// TestReviewUsedApprovalTakesNoVerdicts: once an approval is used, a late
// verdict is refused and the request stays used (regression).
func TestReviewUsedApprovalTakesNoVerdicts(t *testing.T) {
	a := startApprovals(t, nil)
	self, _ := a.run(releaseRun)
	act := pgCredential("read")
	apr := a.decide(self, act).Approval.ID
	if _, err := a.approve("bob", apr); err != nil {
		t.Fatal(err)
	}
	if d := a.decide(self, act); d.Decision != writ.VerdictAllow {
		t.Fatal(d)
	}
	if _, err := a.approve("carol", apr); writ.ErrorCode(err) != "approval_not_pending" {
		t.Fatalf("a verdict on a used approval: %v", err)
	}
	if v, _ := a.human.GetApproval(context.Background(), apr); v.State != writ.ApprovalUsed {
		t.Fatalf("state %s, want used", v.State)
	}
}

// TestReviewChildIssuerCannotApprove: a child run keeps its trigger's
// issuer, so the human who signed the root trigger cannot approve the
// child's gates either (regression, C-AP2 through delegation).
func TestReviewChildIssuerCannotApprove(t *testing.T) {
	a := startApprovals(t, nil)
	parent, pid := a.run(releaseRun)
	kid := delegMust(t, a.r.url, parent, pid, client.DelegateRequest{Agent: "release-bot", Profile: "release", Task: "ship",
		Scope: &writ.Scope{Tools: []string{"read"}, Environments: []string{"staging"}, Secrets: []string{"deploy/*"}, MaxDuration: writ.Duration(10 * time.Minute)}})
	d := a.decide(kid.c, pgCredential("read"))
	if d.Decision != writ.VerdictApprovalRequired || d.Approval == nil {
		t.Fatalf("child's gated action: %+v", d)
	}
	if _, err := a.approve("dev", d.Approval.ID); writ.ErrorCode(err) != "separation_of_duties" {
		t.Fatalf("the root trigger's signer approving a child's gate: %v", err)
	}
	if _, err := a.approve("bob", d.Approval.ID); err != nil {
		t.Fatal(err)
	}
	if got := a.decide(kid.c, pgCredential("read")); got.Decision != writ.VerdictAllow {
		t.Fatalf("child's approved action: %+v", got)
	}
	// The child's approval is the child's: the parent does not get it.
	if got := a.decide(parent, pgCredential("read")); got.Decision == writ.VerdictAllow {
		t.Fatalf("the parent used its child's approval: %+v", got)
	}
}

// TestReviewRunTokenCannotReachVerdicts: the statement and verdict routes
// refuse a run's token, even with a human's valid signature (regression).
func TestReviewRunTokenCannotReachVerdicts(t *testing.T) {
	a := startApprovals(t, nil)
	self, _ := a.run(releaseRun)
	apr := a.decide(self, pgCredential("read")).Approval.ID
	ctx := context.Background()
	if _, err := self.ApprovalStatement(ctx, apr, approval.Approve); writ.ErrorCode(err) != "human_only" {
		t.Fatalf("statement with a run token: %v", err)
	}
	bob := a.humans["bob"]
	body := a.sign(bob, bob.key, apr, approval.Deny)
	if _, err := self.SubmitApproval(ctx, apr, approval.Deny, body); writ.ErrorCode(err) != "human_only" {
		t.Fatalf("deny with a run token: %v", err)
	}
}

// TestReviewPushAfterApprovalKeepsMergeApproval: docs/threat-model.md INV-6 "any push
// after an approval voids it" and C-AP3 "any new commit ... after approval
// voids the approval". A human approves merging head H1 of the run's work;
// the agent then pushes more to its run branch (an allowed push, never
// gated), and the merge of H1 is still allowed with the old approval.
func TestReviewPushAfterApprovalKeepsMergeApproval(t *testing.T) {
	a := startApprovals(t, nil)
	self, id := a.run(nil)
	const base, h1 = "0123456789abcdef0123456789abcdef01234567", "89abcdef0123456789abcdef0123456789abcdef"
	merge := writ.Action{Kind: writ.ActionMerge, Target: writ.Target{Repo: "acme/api", Ref: "main", Base: base, Head: h1}}
	d := a.decide(self, merge)
	if d.Decision != writ.VerdictApprovalRequired || d.Approval == nil {
		t.Fatalf("merge: %+v", d)
	}
	if _, err := a.approve("bob", d.Approval.ID); err != nil {
		t.Fatal(err)
	}
	push := writ.Action{Kind: writ.ActionGitPush, Target: writ.Target{Repo: "acme/api", Ref: "writ/" + string(id) + "/fix", Paths: []string{"src/a.go"}}}
	if p := a.decide(self, push); p.Decision != writ.VerdictAllow {
		t.Fatalf("push: %+v", p)
	}
	if got := a.decide(self, merge); got.Decision == writ.VerdictAllow {
		t.Fatalf("the merge approval survived a later push: %+v", got)
	}
}
