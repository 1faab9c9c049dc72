package writ_test

import (
	"errors"
	"testing"

	"github.com/writ-dev/writ"
)

// TestDecisionMessage is the one text of each kind of decision: every
// enforcement point (git, MCP, hooks, egress, the API) shows this code and
// sentence; each package's tests check that its transport carries them.
func TestDecisionMessage(t *testing.T) {
	scope := writ.Reason{Code: "tool_not_in_scope", Message: `tool "shell:net" is not in this run's scope`}
	budget := writ.Reason{Code: "budget_total_calls", Message: "the run made 500 calls, its budget"}
	protected := writ.Reason{Code: "protected_path", Message: "the push changes protected paths: .github/ci.yml"}
	tests := []struct {
		name         string
		d            writ.Decision
		kind         writ.Kind
		code, text   string
		wantApproval string
	}{
		{name: "deny, one reason", d: writ.Decision{ID: "dec_1", Verdict: writ.VerdictDeny, Reasons: []writ.Reason{scope}},
			kind: writ.KindDenied, code: "tool_not_in_scope", text: `tool "shell:net" is not in this run's scope`},
		{name: "deny, two reasons", d: writ.Decision{ID: "dec_2", Verdict: writ.VerdictDeny, Reasons: []writ.Reason{scope, budget}},
			kind: writ.KindDenied, code: "tool_not_in_scope", text: `tool "shell:net" is not in this run's scope; the run made 500 calls, its budget`},
		{name: "deny, no reason", d: writ.Decision{ID: "dec_3", Verdict: writ.VerdictDeny},
			kind: writ.KindDenied, code: "denied", text: "denied by policy"},
		{name: "unknown verdict", d: writ.Decision{ID: "dec_4", Verdict: "maybe"},
			kind: writ.KindDenied, code: "denied", text: "denied by policy"},
		{name: "approval required, with ref", d: writ.Decision{ID: "dec_5", Verdict: writ.VerdictApprovalRequired, Reasons: []writ.Reason{protected},
			Approval: &writ.ApprovalRef{ID: "apr_1", Group: "maintainers", Count: 1}},
			kind: writ.KindApprovalPending, code: "approval_required", wantApproval: "apr_1",
			text: `the push changes protected paths: .github/ci.yml; approval apr_1 needs 1 approver(s) from "maintainers" (writ approvals show apr_1)`},
		{name: "approval required, ref without reasons", d: writ.Decision{ID: "dec_6", Verdict: writ.VerdictApprovalRequired,
			Approval: &writ.ApprovalRef{ID: "apr_2", Group: "ops", Count: 2}},
			kind: writ.KindApprovalPending, code: "approval_required", wantApproval: "apr_2",
			text: `this needs a human approval first; approval apr_2 needs 2 approver(s) from "ops" (writ approvals show apr_2)`},
		{name: "approval required, without ref", d: writ.Decision{ID: "dec_7", Verdict: writ.VerdictApprovalRequired, Reasons: []writ.Reason{protected}},
			kind: writ.KindApprovalPending, code: "approval_required", text: "the push changes protected paths: .github/ci.yml"},
		{name: "approval required, nothing", d: writ.Decision{ID: "dec_8", Verdict: writ.VerdictApprovalRequired},
			kind: writ.KindApprovalPending, code: "approval_required", text: "this needs a human approval first"},
		{name: "approval required, dry run", d: writ.Decision{ID: "dec_9", Verdict: writ.VerdictApprovalRequired, DryRun: true, Reasons: []writ.Reason{protected},
			Approval: &writ.ApprovalRef{Group: "maintainers", Count: 1}},
			kind: writ.KindApprovalPending, code: "approval_required",
			text: `the push changes protected paths: .github/ci.yml; it would need 1 approver(s) from "maintainers"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, text := writ.DecisionMessage(&tt.d)
			if code != tt.code || text != tt.text {
				t.Errorf("DecisionMessage = %q, %q\nwant %q, %q", code, text, tt.code, tt.text)
			}
			var e *writ.Error
			if err := writ.DecisionError(&tt.d); !errors.As(err, &e) {
				t.Fatalf("DecisionError = %v; want a *writ.Error", err)
			}
			want := writ.Error{Kind: tt.kind, Code: tt.code, Message: tt.text, Decision: tt.d.ID, Approval: tt.wantApproval}
			if e.Kind != want.Kind || e.Code != want.Code || e.Message != want.Message || e.Decision != want.Decision || e.Approval != want.Approval || e.Items != nil {
				t.Errorf("DecisionError = %#v\nwant %#v", *e, want)
			}
		})
	}
	allow := &writ.Decision{ID: "dec_0", Verdict: writ.VerdictAllow}
	if err := writ.DecisionError(allow); err != nil {
		t.Errorf("DecisionError(allow) = %v; want nil", err)
	}
	if code, text := writ.DecisionMessage(allow); code != "allowed" || text != "allowed by policy" {
		t.Errorf("DecisionMessage(allow) = %q, %q", code, text)
	}
}
