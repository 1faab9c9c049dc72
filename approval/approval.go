// Package approval is writ's approval service (docs/design.md §4.5): the
// statement a human signs, the checks a signed verdict must pass — a
// configured human's own key over the exact statement bytes, separation of
// duties, the required group, distinct humans up to the count, a request
// still pending, unexpired and under the policy it was asked under — and
// writ's countersignature, an in-toto statement in DSSE by the attest key.
//
// Requests are opened, reused, voided and consumed by the decision point
// (package decision) in the decision's own transaction; this package
// resolves them. Every verdict and every refusal of an authenticated human
// is an audit event.
package approval

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/attest"
	"github.com/writ-dev/writ/trigger"
)

// Wire constants of the approval statement.
const (
	PayloadType  = "application/vnd.writ.approval.v1+json"
	SSHNamespace = "writ-approval"
	APIVersion   = "writ.dev/v1"
	maxPayload   = 16 << 10
)

// Verdicts a human signs.
const (
	Approve = "approve"
	Deny    = "deny"
)

// Statement is the canonical approval statement (docs/design.md §4.5). The
// server fixes its bytes: [StatementBytes] of the same request, verdict and
// approver are always the same bytes, and a signature counts only over
// exactly those.
type Statement struct {
	APIVersion    string           `json:"apiVersion"`
	Kind          string           `json:"kind"`
	ApprovalID    string           `json:"approvalId"`
	Verdict       string           `json:"verdict"`
	Subject       StatementSubject `json:"subject"`
	Run           writ.RunID       `json:"run"`
	TriggerDigest string           `json:"triggerDigest"`
	PolicyDigest  string           `json:"policyDigest"`
	ExpiresAt     time.Time        `json:"expiresAt"`
	Approver      string           `json:"approver"`
}

// StatementSubject is what the approval binds to.
type StatementSubject struct {
	Kind   string         `json:"kind"`
	Digest string         `json:"digest"`
	Detail map[string]any `json:"detail"`
}

// StatementBytes returns the exact bytes approver signs to give verdict
// on a.
func StatementBytes(a *writ.ApprovalRequest, verdict, approver string) ([]byte, error) {
	if verdict != Approve && verdict != Deny {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_verdict", "verdict %q: want approve or deny", verdict)
	}
	return json.Marshal(&Statement{
		APIVersion: APIVersion, Kind: "ApprovalStatement", ApprovalID: a.ID, Verdict: verdict,
		Subject: StatementSubject{Kind: a.SubjectKind, Digest: a.SubjectDigest, Detail: a.Subject},
		Run:     a.Run, TriggerDigest: a.TriggerDigest, PolicyDigest: a.PolicyDigest, ExpiresAt: a.ExpiresAt.UTC(),
		Approver: approver,
	})
}

// Store is what the service needs from storage.
type Store interface {
	GetApproval(ctx context.Context, id string) (*writ.ApprovalRequest, error)
	GetRun(ctx context.Context, id writ.RunID) (*writ.Run, error)
	RecordGrant(ctx context.Context, id string, g *writ.ApprovalGrant, expectGrants int, state string, events ...*writ.Event) error
	VoidApproval(ctx context.Context, v writ.ApprovalVoid) error
	ExpiredApprovals(ctx context.Context, now time.Time, limit int) ([]*writ.ApprovalRequest, error)
	AppendEvent(ctx context.Context, ev *writ.Event) error
}

// Config holds the service's dependencies.
type Config struct {
	Store Store
	// Ring holds the humans' public keys (the keys they sign triggers with).
	Ring *trigger.KeyRing
	// Humans are the configured humans by name.
	Humans map[string]*writ.Signer
	// Attest countersigns every verdict.
	Attest *ecdsa.PrivateKey
	// PolicyDigest returns the digest of the policy bundle in force: an
	// approval asked under another policy is void.
	PolicyDigest func() string
	// SelfApproval lets the trigger's issuer approve its own run's gates
	// (separation of duties is on by default).
	SelfApproval bool
	Logger       *slog.Logger
	Now          func() time.Time
	// OnVerdict is called after a verdict is recorded; may be nil.
	OnVerdict func(*writ.ApprovalRequest)
}

// Service resolves approval requests.
type Service struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
}

// New returns the service.
func New(cfg Config) *Service {
	s := &Service{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Statement returns the statement p signs to give verdict on approval id.
func (s *Service) Statement(ctx context.Context, p *writ.Principal, id, verdict string) ([]byte, error) {
	if p == nil || p.Kind != writ.PrincipalHuman {
		return nil, writ.Errorf(writ.KindDenied, "human_only", "only humans approve; agents and run tokens never do")
	}
	a, err := s.cfg.Store.GetApproval(ctx, id)
	if err != nil {
		return nil, err
	}
	return StatementBytes(a, verdict, p.Name)
}

// Submit checks a signed verdict of human p on approval id and records
// it. body is the signed statement in either wire form of docs/design.md §4.1:
// a DSSE envelope of [PayloadType], or {"payload", "sshsig"} with SSH
// namespace [SSHNamespace]. A refusal of an authenticated human is an
// approval.refused event.
func (s *Service) Submit(ctx context.Context, p *writ.Principal, id, verdict string, body []byte) (*writ.ApprovalRequest, error) {
	if p == nil || p.Kind != writ.PrincipalHuman {
		return nil, writ.Errorf(writ.KindDenied, "human_only", "only humans approve; agents and run tokens never do")
	}
	if verdict != Approve && verdict != Deny {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_verdict", "verdict %q: want approve or deny", verdict)
	}
	for attempt := 0; ; attempt++ {
		a, err := s.submit(ctx, p, id, verdict, body)
		if writ.ErrorCode(err) == "approval_changed" && attempt < 3 {
			continue // another human's verdict landed in between: decide again
		}
		if err != nil {
			var we *writ.Error
			if errors.As(err, &we) && we.Kind != writ.KindInternal && we.Kind != writ.KindNotFound {
				s.refused(ctx, p, id, verdict, we)
			}
			return nil, err
		}
		if s.cfg.OnVerdict != nil {
			s.cfg.OnVerdict(a)
		}
		return a, nil
	}
}

func (s *Service) submit(ctx context.Context, p *writ.Principal, id, verdict string, body []byte) (*writ.ApprovalRequest, error) {
	a, err := s.cfg.Store.GetApproval(ctx, id)
	if err != nil {
		return nil, err
	}
	// The signature: a configured key, of this human, over exactly the
	// statement the server fixes for this request, verdict and approver.
	o, err := trigger.Open(body, s.cfg.Ring, trigger.OpenOptions{PayloadType: PayloadType, SSHNamespace: SSHNamespace, MaxPayload: maxPayload})
	if err != nil {
		code := writ.ErrorCode(err)
		if code == "" {
			code = "bad_signature"
		}
		return nil, writ.Errorf(writ.KindDenied, code, "the signed statement does not verify: %s; sign the bytes of GET /v1/approvals/%s/statement?verdict=%s with your own key", strings.TrimPrefix(err.Error(), code+": "), id, verdict)
	}
	if o.Signer != p.Name {
		return nil, writ.Errorf(writ.KindDenied, "key_not_yours", "the statement is signed with a key of %s, not of %s: each human signs with their own key", o.Signer, p.Name)
	}
	if h := s.cfg.Humans[p.Name]; h == nil || h.Kind != writ.SignerHuman {
		return nil, writ.Errorf(writ.KindDenied, "not_a_human", "%s is not a configured human", p.Name)
	}
	want, err := StatementBytes(a, verdict, p.Name)
	if err != nil {
		return nil, err
	}
	if string(o.Payload) != string(want) {
		return nil, writ.Errorf(writ.KindDenied, "statement_mismatch", "the signed bytes are not the statement for %s of approval %s by %s; fetch GET /v1/approvals/%s/statement?verdict=%s and sign it unchanged", verdict, id, p.Name, id, verdict)
	}
	now := s.now()
	switch {
	case a.State != writ.ApprovalPending:
		return nil, writ.Errorf(writ.KindConflict, "approval_not_pending", "approval %s is %s: it takes no more verdicts", id, a.State)
	case !now.Before(a.ExpiresAt):
		s.void(ctx, a, writ.ApprovalExpired, "expired", p.Actor())
		return nil, writ.Errorf(writ.KindConflict, "approval_expired", "approval %s expired at %s; the agent must ask again", id, a.ExpiresAt.Format(time.RFC3339))
	case s.cfg.PolicyDigest != nil && s.cfg.PolicyDigest() != a.PolicyDigest:
		s.void(ctx, a, writ.ApprovalVoided, "policy_changed", p.Actor())
		return nil, writ.Errorf(writ.KindConflict, "policy_changed", "approval %s was asked under policy %s, and %s decides now; the agent must ask again", id, a.PolicyDigest, s.cfg.PolicyDigest())
	}
	run, err := s.cfg.Store.GetRun(ctx, a.Run)
	if err != nil {
		return nil, err
	}
	if !s.cfg.SelfApproval && p.Name == run.Issuer {
		return nil, writ.Errorf(writ.KindDenied, "separation_of_duties", "%s signed the trigger of run %s and cannot approve its gates; another human in %q must", p.Name, run.ID, a.Group)
	}
	if verdict == Approve && !p.InGroup(a.Group) {
		return nil, writ.Errorf(writ.KindDenied, "not_in_group", "approval %s needs humans of group %q; %s is not in it", id, a.Group, p.Name)
	}
	if verdict == Deny && !p.InGroup(a.Group) && !p.InGroup(writ.GroupAdmins) {
		return nil, writ.Errorf(writ.KindDenied, "not_in_group", "approval %s can be denied by humans of group %q or admins; %s is neither", id, a.Group, p.Name)
	}
	approvals := 0
	for _, g := range a.Grants {
		if g.Human == p.Name {
			return nil, writ.Errorf(writ.KindConflict, "already_signed", "%s already signed a verdict on approval %s; distinct humans count, not signatures", p.Name, id)
		}
		if g.Verdict == Approve {
			approvals++
		}
	}
	state := writ.ApprovalPending
	switch {
	case verdict == Deny:
		state = writ.ApprovalDenied
	case approvals+1 >= a.Count:
		state = writ.ApprovalApproved
	}

	sum := sha256.Sum256(want)
	statementDigest := hex.EncodeToString(sum[:])
	subjectDigest := strings.TrimPrefix(a.SubjectDigest, "sha256:")
	counter, err := attest.Sign(&attest.Statement{
		Subject: []attest.Subject{
			{Name: "approval-statement:" + id + ":" + p.Name, Digest: map[string]string{"sha256": statementDigest}},
			{Name: "approval-subject:" + a.SubjectKind, Digest: map[string]string{"sha256": subjectDigest}},
		},
		PredicateType: attest.PredicateApproval,
		Predicate: map[string]any{
			"approvalId": id, "verdict": verdict, "approver": p.Name, "keyId": o.KeyID, "format": o.Format,
			"run": a.Run, "triggerDigest": a.TriggerDigest, "policyDigest": a.PolicyDigest,
			"subject": map[string]any{"kind": a.SubjectKind, "digest": a.SubjectDigest, "detail": a.Subject},
			"group":   a.Group, "required": a.Count, "approvals": approvals + btoi(verdict == Approve), "state": state,
			"verifiedAt": now.UTC(),
		},
	}, s.cfg.Attest)
	if err != nil {
		return nil, err
	}
	g := &writ.ApprovalGrant{Human: p.Name, Verdict: verdict, KeyID: o.KeyID, Format: o.Format, Statement: want, Envelope: body, Countersignature: counter}
	typ := writ.EventApprovalGranted
	if verdict == Deny {
		typ = writ.EventApprovalDenied
	}
	ev := &writ.Event{Type: typ, Run: a.Run, Actor: p.Actor(), Subject: id, Decision: verdict,
		Details: map[string]any{
			"approver": p.Name, "keyId": o.KeyID, "format": o.Format, "statementDigest": "sha256:" + statementDigest,
			"statement": string(want), "envelope": json.RawMessage(compact(body)), "countersignature": json.RawMessage(counter),
			"approvals": approvals + btoi(verdict == Approve), "required": a.Count, "state": state,
		}}
	if err := s.cfg.Store.RecordGrant(ctx, id, g, len(a.Grants), state, ev); err != nil {
		return nil, err
	}
	a.State = state
	a.Grants = append(a.Grants, *g)
	s.log.InfoContext(ctx, "approval verdict", slog.String("approval", id), slog.String("human", p.Name), slog.String("verdict", verdict), slog.String("state", state))
	return a, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// compact returns body as compact JSON (it was verified as JSON by Open).
func compact(body []byte) []byte {
	var v json.RawMessage
	if err := json.Unmarshal(body, &v); err != nil {
		return []byte("null")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return []byte("null")
	}
	return b
}

func (s *Service) void(ctx context.Context, a *writ.ApprovalRequest, state, reason, actor string) {
	err := s.cfg.Store.VoidApproval(ctx, writ.ApprovalVoid{ID: a.ID, State: state, Event: &writ.Event{
		Type: writ.EventApprovalVoided, Run: a.Run, Actor: actor, Subject: a.ID,
		Details: map[string]any{"reason": reason, "was": a.State, "subjectDigest": a.SubjectDigest}}})
	if err != nil {
		s.log.ErrorContext(ctx, "void approval", slog.String("approval", a.ID), slog.Any("error", err))
	}
}

// refused records a human's refused verdict.
func (s *Service) refused(ctx context.Context, p *writ.Principal, id, verdict string, we *writ.Error) {
	ev := &writ.Event{Type: writ.EventApprovalRefused, Actor: p.Actor(), Subject: id, Decision: verdict,
		Details: map[string]any{"code": we.Code, "message": we.Message, "human": p.Name}}
	if a, err := s.cfg.Store.GetApproval(ctx, id); err == nil {
		ev.Run = a.Run
	}
	if err := s.cfg.Store.AppendEvent(ctx, ev); err != nil {
		s.log.ErrorContext(ctx, "record approval refusal", slog.String("approval", id), slog.Any("error", err))
	}
}

// ExpireDue expires every live request past its expiry, each with an
// approval.voided event (reason expired).
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	n := 0
	for {
		due, err := s.cfg.Store.ExpiredApprovals(ctx, s.now(), 100)
		if err != nil {
			return n, err
		}
		for _, a := range due {
			if err := s.cfg.Store.VoidApproval(ctx, writ.ApprovalVoid{ID: a.ID, State: writ.ApprovalExpired, Event: &writ.Event{
				Type: writ.EventApprovalVoided, Run: a.Run, Actor: writ.ActorSystem, Subject: a.ID,
				Details: map[string]any{"reason": "expired", "was": a.State, "expiresAt": a.ExpiresAt}}}); err != nil {
				return n, fmt.Errorf("expire approval %s: %w", a.ID, err)
			}
			n++
		}
		if len(due) < 100 {
			return n, nil
		}
	}
}
