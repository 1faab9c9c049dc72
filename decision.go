package writ

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Action kinds (docs/design.md §4.4).
const (
	ActionTool       = "tool"
	ActionMCPCall    = "mcp.call"
	ActionCredential = "credential"
	ActionEgress     = "egress"
	ActionGitFetch   = "git.fetch"
	ActionGitPush    = "git.push"
	ActionMerge      = "merge"
	ActionBuild      = "build"
	ActionRelease    = "release"
	ActionDeploy     = "deploy"
	ActionDelegate   = "delegate"
	ActionReview     = "review"
	ActionRunStart   = "run.start"
)

var actionKinds = map[string]bool{
	ActionTool: true, ActionMCPCall: true, ActionCredential: true, ActionEgress: true, ActionGitFetch: true,
	ActionGitPush: true, ActionMerge: true, ActionBuild: true, ActionRelease: true, ActionDeploy: true,
	ActionDelegate: true, ActionReview: true, ActionRunStart: true,
}

// Verdicts of a decision, by precedence: deny > approval_required > allow.
const (
	VerdictAllow            = "allow"
	VerdictDeny             = "deny"
	VerdictApprovalRequired = "approval_required"
)

// Event types of the decision point.
const (
	EventDecision          = "decision"
	EventDecisionOutcome   = "decision.outcome"
	EventPolicyLoaded      = "policy.loaded"
	EventApprovalRequested = "approval.requested"
)

// Action is one thing a run asks to do. Name is in the shared tool grammar
// for tool and mcp.call actions ("shell:test", "mcp:everything/echo"),
// host:port for egress, the credential kind for credential actions, and
// free (may be empty) for the others.
type Action struct {
	Kind   string          `json:"kind"`
	Name   string          `json:"name,omitempty"`
	Args   json.RawMessage `json:"args,omitempty"`
	Target Target          `json:"target,omitzero"`
}

// Target is what an action touches. Which fields matter depends on the
// kind: a push names repo, ref and the changed paths; a release an artifact
// digest and an environment; a secret request a secret and an environment.
type Target struct {
	Repo        string   `json:"repo,omitempty"`
	Ref         string   `json:"ref,omitempty"`
	Environment string   `json:"environment,omitempty"`
	Paths       []string `json:"paths,omitempty"`
	Host        string   `json:"host,omitempty"`
	Secret      string   `json:"secret,omitempty"`
	Digest      string   `json:"digest,omitempty"`
	// Base and Head are commit SHAs, for merges and pushes.
	Base string `json:"base,omitempty"`
	Head string `json:"head,omitempty"`
}

// Limits on what an action may carry.
const (
	MaxActionArgs  = 16 << 10
	MaxActionPaths = 1000
)

// Validate checks the syntax of an action: a known kind, a name in the
// grammar of its kind, and well-formed target fields. It returns a
// KindInvalid *Error naming the first problem.
func (a *Action) Validate() error {
	bad := func(code, format string, args ...any) error {
		return Errorf(KindInvalid, code, format, args...)
	}
	if !actionKinds[a.Kind] {
		return bad("invalid_action", "action.kind %q: want one of tool, mcp.call, credential, egress, git.fetch, git.push, merge, build, release, deploy, delegate, review, run.start", a.Kind)
	}
	if len(a.Name) > 256 || strings.ContainsAny(a.Name, " \t\r\n\x00") {
		return bad("invalid_action", "action.name %q: at most 256 characters, no spaces or control characters", a.Name)
	}
	switch a.Kind {
	case ActionTool, ActionMCPCall:
		if err := ValidateToolPattern(a.Name); err != nil || strings.HasSuffix(a.Name, "*") {
			return bad("invalid_action", "action.name %q: want one tool of the grammar read, edit, shell:build, shell:test, shell:git, shell:net, shell:pkg, shell:other, exec:<name>, mcp:<server>/<tool>, web:fetch, web:search, agent:task (no wildcards)", a.Name)
		}
		if (a.Kind == ActionMCPCall) != strings.HasPrefix(a.Name, "mcp:") {
			return bad("invalid_action", "action.name %q: MCP tools are mcp.call actions named mcp:<server>/<tool>; other tools are tool actions", a.Name)
		}
	case ActionEgress:
		host, port, ok := strings.Cut(a.Name, ":")
		if !ok || ValidateHostPattern(host) != nil || strings.Contains(host, "*") || !validPort(port) {
			return bad("invalid_action", "action.name %q: an egress action is named host:port, such as proxy.golang.org:443", a.Name)
		}
	case ActionCredential:
		if !ValidName(a.Name) {
			return bad("invalid_action", "action.name %q: a credential action is named for its kind (git, secret, postgres, vault, github)", a.Name)
		}
	}
	if len(a.Args) > MaxActionArgs {
		return Errorf(KindTooLarge, "too_large", "action.args is over %d bytes", MaxActionArgs)
	}
	if len(a.Args) > 0 {
		var v any
		if err := json.Unmarshal(a.Args, &v); err != nil {
			return bad("invalid_action", "action.args is not valid JSON")
		}
	}
	t := &a.Target
	if t.Repo != "" && !ValidRepoName(t.Repo) {
		return bad("invalid_target", "action.target.repo %q: want owner/repo of [a-z0-9._-]", t.Repo)
	}
	if t.Ref != "" {
		if err := ValidateRefName(strings.TrimPrefix(t.Ref, "refs/heads/")); err != nil {
			return bad("invalid_target", "action.target.ref: %v", err)
		}
	}
	if t.Environment != "" && !ValidName(t.Environment) {
		return bad("invalid_target", "action.target.environment %q is not a valid environment name", t.Environment)
	}
	if len(t.Paths) > MaxActionPaths {
		return Errorf(KindTooLarge, "too_large", "action.target.paths lists more than %d paths", MaxActionPaths)
	}
	for _, p := range t.Paths {
		if err := ValidatePath(p); err != nil {
			return bad("invalid_target", "action.target.paths: %v", err)
		}
	}
	if t.Host != "" && (ValidateHostPattern(t.Host) != nil || strings.Contains(t.Host, "*")) {
		return bad("invalid_target", "action.target.host %q: want a host name", t.Host)
	}
	if t.Secret != "" {
		if err := ValidatePath(t.Secret); err != nil {
			return bad("invalid_target", "action.target.secret: %v", err)
		}
	}
	if t.Digest != "" && !validDigest(t.Digest) {
		return bad("invalid_target", "action.target.digest %q: want sha256:<64 hex>", t.Digest)
	}
	for _, c := range []struct{ name, v string }{{"base", t.Base}, {"head", t.Head}} {
		if c.v != "" && !validSHA(c.v) {
			return bad("invalid_target", "action.target.%s %q: want a full commit SHA (40 or 64 hex)", c.name, c.v)
		}
	}
	return nil
}

// ValidatePath checks a concrete repository path: relative, slash
// separated, no empty, "." or ".." segments, no wildcards.
func ValidatePath(p string) error {
	if p == "" || len(p) > 1024 || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "*\x00\\") {
		return fmt.Errorf("path %q: want a relative path such as src/main.go, without wildcards", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("path %q: empty, \".\" or \"..\" segments are not allowed", p)
		}
	}
	return nil
}

func validPort(s string) bool {
	if len(s) == 0 || len(s) > 5 {
		return false
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n >= 1 && n <= 65535
}

func validDigest(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	return ok && len(h) == 64 && isLowerHex(h)
}

func validSHA(s string) bool { return (len(s) == 40 || len(s) == 64) && isLowerHex(s) }

func isLowerHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Reason is one reason code of a decision, with a message for people.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Obligations are what a decision requires of the enforcement point and of
// writ: the longest credential it may issue, and whether the run is
// suspended with it.
type Obligations struct {
	MaxTTL  Duration `json:"maxTTL,omitempty"`
	Suspend bool     `json:"suspend"`
}

// ApprovalRef names the approval request a gated decision waits on.
type ApprovalRef struct {
	ID    string `json:"id"`
	Group string `json:"group"`
	Count int    `json:"count"`
}

// Decision is policy's answer to one action, as recorded. Every decision
// is exactly one `decision` event.
type Decision struct {
	ID           string       `json:"id"`
	Run          RunID        `json:"run"`
	Time         time.Time    `json:"time"`
	Action       Action       `json:"action"`
	Via          string       `json:"via,omitempty"`
	CallRef      string       `json:"callRef,omitempty"`
	DryRun       bool         `json:"dryRun,omitempty"`
	Actor        string       `json:"actor"`
	Verdict      string       `json:"decision"`
	Reasons      []Reason     `json:"reasons"`
	Approval     *ApprovalRef `json:"approval,omitempty"`
	Obligations  Obligations  `json:"obligations"`
	Alerts       []string     `json:"alerts,omitempty"`
	PolicyDigest string       `json:"policyDigest"`
	InputDigest  string       `json:"inputDigest"`
	// Outcome is what the caller reported after an allowed action ran.
	Outcome *Outcome `json:"outcome,omitempty"`
}

// Enforced reports whether d counts toward denial thresholds and budgets:
// advisory hook decisions and dry runs do not (docs/design.md §4.4).
func (d *Decision) Enforced() bool { return !d.DryRun && !strings.HasPrefix(d.Via, "hook:") }

// Outcome is the result of an allowed action, reported by its caller.
type Outcome struct {
	ExitCode   *int      `json:"exitCode,omitempty"`
	DurationMS int64     `json:"durationMs,omitempty"`
	Error      string    `json:"error,omitempty"`
	Time       time.Time `json:"time"`
}

// HistoryEntry is one earlier decision of a run, as policy sees it.
type HistoryEntry struct {
	Kind     string    `json:"kind"`
	Name     string    `json:"name,omitempty"`
	Verdict  string    `json:"decision"`
	Via      string    `json:"via,omitempty"`
	Time     time.Time `json:"time"`
	Enforced bool      `json:"enforced"`
}

// ApprovalRequest is a request for a human's approval, created by an
// approval_required decision. Identical live requests (same run, subject
// kind and digest) are one request. Slot names what the subject is of (a
// branch, a secret in an environment, a tool): a new subject in the same
// slot voids the old request.
type ApprovalRequest struct {
	ID            string         `json:"id"`
	Run           RunID          `json:"run"`
	Decision      string         `json:"decision"`
	SubjectKind   string         `json:"subjectKind"`
	SubjectDigest string         `json:"subjectDigest"`
	Subject       map[string]any `json:"subject"`
	Slot          string         `json:"slot"`
	Reasons       []Reason       `json:"reasons,omitempty"`
	Group         string         `json:"group"`
	Count         int            `json:"count"`
	State         string         `json:"state"`
	TriggerDigest string         `json:"triggerDigest"`
	PolicyDigest  string         `json:"policyDigest"`
	CreatedAt     time.Time      `json:"createdAt"`
	ExpiresAt     time.Time      `json:"expiresAt"`
	// UsedBy is the decision that consumed an approved request.
	UsedBy string `json:"usedBy,omitempty"`
	// Grants are the signed verdicts so far.
	Grants []ApprovalGrant `json:"grants,omitempty"`
}

// Approval states.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalVoided   = "voided"
	ApprovalExpired  = "expired"
	ApprovalUsed     = "used"
)

// Live reports whether the request can still be approved or used.
func (a *ApprovalRequest) Live() bool {
	return a.State == ApprovalPending || a.State == ApprovalApproved
}

// ApprovalGrant is one human's signed verdict on an approval request: the
// exact statement bytes, the envelope they signed it in, and writ's
// countersignature (an in-toto statement in DSSE, by the attest key).
type ApprovalGrant struct {
	Human            string    `json:"human"`
	Verdict          string    `json:"verdict"` // approve or deny
	KeyID            string    `json:"keyId"`
	Format           string    `json:"format"` // dsse or sshsig
	Statement        []byte    `json:"statement"`
	Envelope         []byte    `json:"envelope"`
	Countersignature []byte    `json:"countersignature"`
	Time             time.Time `json:"time"`
}

// Approval event types besides approval.requested.
const (
	EventApprovalGranted = "approval.granted"
	EventApprovalDenied  = "approval.denied"
	EventApprovalVoided  = "approval.voided"
	EventApprovalRefused = "approval.refused"
)

// Approval subject kinds (docs/design.md §4.5).
const (
	SubjectCommit   = "commit"
	SubjectArtifact = "artifact"
	SubjectSecret   = "secret"
	SubjectTool     = "tool"
	SubjectScope    = "scope"
)

// ApprovalReason is a reason a decision needs human approval: the group
// whose members may approve and how many distinct ones.
type ApprovalReason struct {
	Reason
	Group string `json:"group"`
	Count int    `json:"count"`
}

// PolicyResult is what the policy engine answered, before precedence is
// applied: every deny reason, every approval reason, whether a rule
// allowed, the obligations and alerts, and which bundle (and
// configuration data) answered.
type PolicyResult struct {
	Deny         []Reason
	Approval     []ApprovalReason
	Allow        bool
	Obligations  Obligations
	Alerts       []string
	PolicyDigest string
	DataDigest   string
}

// Verdict applies the precedence deny > approval_required > allow; a
// result that neither denies, asks for approval nor allows is deny
// (no_rule_allowed). It returns the verdict, its reasons, and for
// approval_required the group and count (the largest count asked).
func (r *PolicyResult) Verdict() (string, []Reason, *ApprovalReason) {
	switch {
	case len(r.Deny) > 0:
		return VerdictDeny, r.Deny, nil
	case len(r.Approval) > 0:
		best := r.Approval[0]
		reasons := make([]Reason, 0, len(r.Approval))
		for _, a := range r.Approval {
			reasons = append(reasons, a.Reason)
			if a.Count > best.Count {
				best = a
			}
		}
		return VerdictApprovalRequired, reasons, &best
	case r.Allow:
		return VerdictAllow, []Reason{}, nil
	}
	return VerdictDeny, []Reason{{Code: "no_rule_allowed", Message: "no policy rule allows this action (deny by default)"}}, nil
}

// RunHistory is what the store knows of a run's earlier decisions, for
// the policy input: the most recent ones, how many were enforced, the
// enforced ones inside the counting window, the names ever allowed, and
// how many children the run has.
type RunHistory struct {
	Recent   []HistoryEntry // oldest first
	Total    int            // enforced decisions
	Window   []HistoryEntry // enforced decisions since the window start, oldest first
	Allowed  map[string]bool
	Children int
}

// HistoryName is the name a decision has in RunHistory.Allowed: the tool
// name for tool and MCP actions, the kind otherwise.
func HistoryName(kind, name string) string {
	if kind == ActionTool || kind == ActionMCPCall {
		return name
	}
	return kind
}

// DecisionRecord is everything one decision writes, in one transaction:
// the decision (its Time is set to the commit time), its events (the
// `decision` event first), a new approval request if it opened one, and
// the suspension of its run if policy asked for it (skipped when the run
// is no longer active).
type DecisionRecord struct {
	Decision    *Decision
	Events      []*Event
	NewApproval *ApprovalRequest
	// UseApproval is the approved request this decision consumes (an
	// approval is single-use); the commit fails with KindConflict
	// "approval_not_approved" if it is no longer approved.
	UseApproval string
	// Voids are live requests this decision voids (a changed subject in
	// the same slot, a changed policy, expiry), each with its event.
	Voids   []ApprovalVoid
	Suspend *Event
	// Lease, when set, is a credential lease the allowed decision issued,
	// stored in the same transaction (the broker's local backends).
	Lease *LeaseRecord
}

// LeaseRecord is a lease to store with its sealed revocation handle, the
// verifier of its secret and its credential.issued event.
type LeaseRecord struct {
	Lease            *Lease
	Handle, Verifier []byte
	Event            *Event
}

// ApprovalVoid voids one live approval request, recorded by Event.
type ApprovalVoid struct {
	ID    string
	State string // ApprovalVoided or ApprovalExpired
	Event *Event
}

// ApprovalFilter selects approvals in a listing. Zero fields match
// everything.
type ApprovalFilter struct {
	State string
	Run   RunID
	Limit int
}

// DecisionMessage is the reason code and the sentence every enforcement
// point shows for a decision that is not allow: git, MCP, the agent hooks,
// egress and the API carry exactly these two, each framed its own way.
//
// A denial's code is its first reason's and its sentence joins every
// reason's message with "; "; a denial policy gave no reason for is
// "denied" and "denied by policy". An unknown verdict is a denial.
// approval_required is the code "approval_required" and the reasons (or
// "this needs a human approval first") followed by the approval to give:
// its id and approvers when one was requested, or whom it would need (a
// dry run). allow is "allowed" and the reasons, or "allowed by policy".
func DecisionMessage(d *Decision) (code, sentence string) {
	msgs := make([]string, 0, len(d.Reasons))
	for _, r := range d.Reasons {
		if r.Message != "" {
			msgs = append(msgs, r.Message)
		}
	}
	sentence = strings.Join(msgs, "; ")
	switch d.Verdict {
	case VerdictAllow:
		if sentence == "" {
			sentence = "allowed by policy"
		}
		return "allowed", sentence
	case VerdictApprovalRequired:
		if sentence == "" {
			sentence = "this needs a human approval first"
		}
		if a := d.Approval; a != nil && a.ID != "" {
			sentence += fmt.Sprintf("; approval %s needs %d approver(s) from %q (writ approvals show %s)", a.ID, a.Count, a.Group, a.ID)
		} else if a != nil {
			sentence += fmt.Sprintf("; it would need %d approver(s) from %q", a.Count, a.Group)
		}
		return "approval_required", sentence
	}
	code = "denied"
	if len(d.Reasons) > 0 && d.Reasons[0].Code != "" {
		code = d.Reasons[0].Code
	}
	if sentence == "" {
		sentence = "denied by policy"
	}
	return code, sentence
}

// DecisionError is the error an enforcement point answers for a decision
// that is not allow, with [DecisionMessage]'s code and sentence:
// [KindApprovalPending] naming the approval request to give, or
// [KindDenied] (for deny and any unknown verdict). It is nil for allow.
func DecisionError(d *Decision) error {
	if d.Verdict == VerdictAllow {
		return nil
	}
	code, sentence := DecisionMessage(d)
	e := &Error{Kind: KindDenied, Code: code, Message: sentence, Decision: d.ID}
	if d.Verdict == VerdictApprovalRequired {
		e.Kind = KindApprovalPending
		if d.Approval != nil {
			e.Approval = d.Approval.ID
		}
	}
	return e
}
