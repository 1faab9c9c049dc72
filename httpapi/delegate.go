package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/decision"
	"github.com/writ-dev/writ/token"
)

// RFC 8693 identifiers.
const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeJWT       = "urn:ietf:params:oauth:token-type:jwt"
	tokenTypeAccess    = "urn:ietf:params:oauth:token-type:access_token"
)

// DelegateRequest is the body of POST /v1/runs/{id}/delegate: RFC 8693
// token exchange field names, with the requested scope as a JSON object
// and the child's agent, profile and task.
type DelegateRequest struct {
	GrantType          string        `json:"grant_type"`
	SubjectToken       string        `json:"subject_token"`
	SubjectTokenType   string        `json:"subject_token_type"`
	RequestedTokenType string        `json:"requested_token_type"`
	Audience           string        `json:"audience"`
	Scope              *writ.Scope   `json:"scope"`
	Agent              string        `json:"agent"`
	Profile            string        `json:"profile"`
	Task               string        `json:"task"`
	MaxDuration        writ.Duration `json:"maxDuration"`
	// DPoPJKT binds the child's first token to the key of the launcher
	// that will hold it (RFC 9449 §10); empty gives an unbound ≤ 5-minute
	// token.
	DPoPJKT string `json:"dpop_jkt"`
}

// DelegateResponse is the RFC 8693 answer, with the child run.
type DelegateResponse struct {
	AccessToken     string  `json:"access_token"`
	IssuedTokenType string  `json:"issued_token_type"`
	TokenType       string  `json:"token_type"`
	ExpiresIn       int64   `json:"expires_in"`
	Run             RunView `json:"run"`
}

// delegate starts a child run whose scope, deadline and depth only narrow
// the parent's. Only the parent's DPoP-bound holder may delegate: the child
// gets a token, and an unbound token never mints another.
func (a *API) delegate(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p := writ.PrincipalFromContext(ctx)
	if p.JKT == "" {
		return writ.Errorf(writ.KindDenied, "dpop_required", "only the DPoP-bound holder of the run's token may delegate; an unbound token cannot start runs")
	}
	var req DelegateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	bad := func(code, format string, args ...any) error {
		return writ.Errorf(writ.KindInvalid, code, format, args...)
	}
	switch {
	case req.GrantType != "" && req.GrantType != grantTokenExchange:
		return bad("unsupported_grant_type", "grant_type %q: want %s", req.GrantType, grantTokenExchange)
	case req.SubjectToken == "":
		return bad("invalid_request", "subject_token is required: the parent run's token")
	case req.SubjectTokenType != "" && req.SubjectTokenType != tokenTypeJWT && req.SubjectTokenType != tokenTypeAccess:
		return bad("invalid_request", "subject_token_type %q: want %s", req.SubjectTokenType, tokenTypeJWT)
	case req.RequestedTokenType != "" && req.RequestedTokenType != tokenTypeJWT && req.RequestedTokenType != tokenTypeAccess:
		return bad("invalid_request", "requested_token_type %q: writ issues %s", req.RequestedTokenType, tokenTypeJWT)
	case req.Audience != "" && req.Audience != a.apiAudience():
		return bad("invalid_target", "audience %q: a child run's first token is for %s; mint other audiences with POST /v1/runs/{id}/token", req.Audience, a.apiAudience())
	case req.Scope == nil:
		return bad("invalid_scope", "scope is required: the child's scope, a subset of the parent's")
	case req.Agent == "" || req.Profile == "":
		return bad("invalid_request", "agent and profile name the child's identity and risk class")
	case len(req.Task) > 16<<10:
		return bad("invalid_request", "task is over 16 KiB")
	case req.DPoPJKT != "" && !validJKT(req.DPoPJKT):
		return bad("invalid_dpop_proof", "dpop_jkt %q is not an RFC 7638 SHA-256 thumbprint", req.DPoPJKT)
	}
	c, err := a.verifier().Verify(req.SubjectToken, a.apiAudience())
	if err != nil || c.Run != string(p.Run) {
		return writ.Errorf(writ.KindDenied, "invalid_grant", "subject_token must be a valid token of run %s", p.Run)
	}
	parent, err := a.runs.get(ctx, p.Run)
	if err != nil {
		return err
	}
	now := a.now()
	if !parent.LiveAt(now) {
		return writ.Errorf(writ.KindConflict, "parent_not_active", "run %s is %s: it delegates nothing", parent.ID, parent.State)
	}
	if parent.Depth+1 > a.cfg.MaxDepth {
		return writ.Errorf(writ.KindDenied, "too_deep", "run %s is at depth %d; delegation goes at most %d levels deep", parent.ID, parent.Depth, a.cfg.MaxDepth)
	}
	scope := *req.Scope
	if scope.MaxDuration == 0 {
		scope.MaxDuration = req.MaxDuration
	}
	if scope.MaxDuration == 0 {
		// Without a duration the child ends with its parent, or when its
		// profile's longest run ends, whichever comes first.
		d := parent.Deadline.Sub(now).Truncate(time.Second)
		if p := a.cfg.Rules.Profiles[req.Profile]; p != nil && p.MaxDuration < d {
			d = p.MaxDuration
		}
		scope.MaxDuration = writ.Duration(d)
	}
	if err := scope.Validate(); err != nil {
		return writ.Errorf(writ.KindInvalid, "invalid_scope", "%v", err)
	}
	deadline := now.Add(scope.MaxDuration.D()).UTC()
	if deadline.After(parent.Deadline) {
		return writ.Errorf(writ.KindInvalid, "deadline_after_parent", "the child would run until %s, after its parent's deadline %s; ask for at most %s",
			deadline.Format(time.RFC3339), parent.Deadline.Format(time.RFC3339), parent.Deadline.Sub(now).Truncate(time.Second))
	}
	if items := scope.Within(&parent.Scope); len(items) > 0 {
		return &writ.Error{Kind: writ.KindInvalid, Code: "invalid_scope", Items: items,
			Message: fmt.Sprintf("a child's scope only narrows its parent's: %d item(s) lie outside run %s's scope: %s", len(items), parent.ID, strings.Join(items, ", "))}
	}
	rules := a.cfg.Rules
	agent, prof := rules.Agents[req.Agent], rules.Profiles[req.Profile]
	switch {
	case agent == nil || agent.Disabled:
		return writ.Errorf(writ.KindDenied, "unknown_agent", "agent %q is not registered (or is disabled)", req.Agent)
	case prof == nil:
		return writ.Errorf(writ.KindDenied, "unknown_profile", "profile %q is not configured", req.Profile)
	case !writ.MatchAnyName(agent.Profiles, req.Profile):
		return writ.Errorf(writ.KindDenied, "profile_not_allowed", "agent %s may not run under profile %s", req.Agent, req.Profile)
	}
	if items := scope.Outside(agent, prof); len(items) > 0 {
		return &writ.Error{Kind: writ.KindDenied, Code: "scope_too_broad", Items: items,
			Message: fmt.Sprintf("the child's scope asks for %d item(s) agent %s under profile %s may not have: %s", len(items), req.Agent, req.Profile, strings.Join(items, ", "))}
	}
	if scope.MaxDuration.D() > prof.MaxDuration {
		return writ.Errorf(writ.KindDenied, "duration_too_long", "profile %s allows runs of at most %s", req.Profile, prof.MaxDuration)
	}
	if s := rules.Signers[parent.Issuer]; s == nil || !writ.MatchAnyName(s.MayAgents, req.Agent) || !writ.MatchAnyName(s.MayProfiles, req.Profile) {
		return writ.Errorf(writ.KindDenied, "signer_not_allowed", "%s, who signed the trigger, may not start agent %s under profile %s, so neither may the run", parent.Issuer, req.Agent, req.Profile)
	}
	scopeJSON, err := json.Marshal(scope)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(scopeJSON)
	scopeDigest := "sha256:" + hex.EncodeToString(sum[:])

	// Policy decides the delegation like any other action of the parent.
	// Its arguments name the scope as asked (not with a default duration
	// computed from the clock), so an approval of a delegation covers the
	// same request made again.
	asked, err := json.Marshal(map[string]any{"scope": req.Scope, "maxDuration": req.MaxDuration})
	if err != nil {
		return err
	}
	askedSum := sha256.Sum256(asked)
	args, _ := json.Marshal(map[string]any{"agent": req.Agent, "profile": req.Profile, "scopeAsked": "sha256:" + hex.EncodeToString(askedSum[:]), "depth": parent.Depth + 1})
	d, err := a.cfg.Decider.Decide(ctx, &decision.Request{Run: parent, Actor: p.Actor(), Via: "api",
		Action: writ.Action{Kind: writ.ActionDelegate, Name: req.Agent, Args: args}})
	if err != nil {
		return err
	}
	if err := verdictError(d); err != nil {
		return err
	}

	chain := append([]writ.ChainLink{{Run: parent.ID, Agent: parent.Agent}}, parent.Chain...)
	child := &writ.Run{
		ID: writ.RunID(writ.NewULID(now, nil)), Agent: req.Agent, Profile: req.Profile, Ticket: parent.Ticket, Task: req.Task,
		Scope: scope, ScopeDigest: scopeDigest, TriggerID: parent.TriggerID, TriggerDigest: parent.TriggerDigest,
		Issuer: parent.Issuer, SignerKey: parent.SignerKey, State: writ.RunActive, CreatedAt: now.UTC(), Deadline: deadline,
		Parent: parent.ID, Depth: parent.Depth + 1, Chain: chain,
	}
	ttl, typ := unboundTTL, "Bearer"
	if req.DPoPJKT != "" {
		ttl, typ = boundTTL, "DPoP"
	}
	raw, claims, err := a.mint(child, a.apiAudience(), req.DPoPJKT, ttl, now)
	if err != nil {
		return err
	}
	actor := p.Actor()
	delegated := &writ.Event{Type: writ.EventRunDelegated, Run: parent.ID, Actor: actor, Subject: string(child.ID),
		Details: map[string]any{"child": child.ID, "agent": child.Agent, "profile": child.Profile, "depth": child.Depth,
			"scopeDigest": scopeDigest, "deadline": deadline, "decision": d.ID}}
	started := &writ.Event{Type: writ.EventRunStarted, Run: child.ID, Actor: actor, Subject: child.SPIFFEID(a.cfg.TrustDomain),
		Details: map[string]any{"agent": child.Agent, "profile": child.Profile, "deadline": child.Deadline, "scopeDigest": scopeDigest,
			"triggerDigest": child.TriggerDigest, "parent": parent.ID, "depth": child.Depth}}
	if err := a.cfg.Store.CreateChildRun(ctx, child, delegated, started, tokenEvent(child, claims, actor)); err != nil {
		return err
	}
	if a.cfg.OnRunCreated != nil {
		a.cfg.OnRunCreated(child)
	}
	a.log.InfoContext(ctx, "run delegated", slog.String("parent", string(parent.ID)), slog.String("child", string(child.ID)),
		slog.String("agent", child.Agent), slog.Int("depth", child.Depth))
	return writeJSON(w, http.StatusCreated, DelegateResponse{
		AccessToken: raw, IssuedTokenType: tokenTypeJWT, TokenType: typ, ExpiresIn: int64(claims.Expiry.Sub(now).Seconds()),
		Run: RunView{Run: child, SPIFFEID: child.SPIFFEID(a.cfg.TrustDomain)},
	})
}

// verdictError is the error an enforcement point answers for a decision
// that is not allow: 403 with the policy's reason, or the pending approval.
func verdictError(d *writ.Decision) error {
	switch d.Verdict {
	case writ.VerdictAllow:
		return nil
	case writ.VerdictApprovalRequired:
		e := &writ.Error{Kind: writ.KindApprovalPending, Code: "approval_required", Decision: d.ID,
			Message: "this needs a human approval first"}
		if d.Approval != nil {
			e.Approval = d.Approval.ID
			e.Message = fmt.Sprintf("this needs %d approval(s) from %q: writ approvals show %s", d.Approval.Count, d.Approval.Group, d.Approval.ID)
		}
		return e
	}
	code, msg := "denied", "denied by policy"
	if len(d.Reasons) > 0 {
		code, msg = d.Reasons[0].Code, d.Reasons[0].Message
	}
	return &writ.Error{Kind: writ.KindDenied, Code: code, Message: msg, Decision: d.ID}
}

func validJKT(s string) bool {
	if len(s) != 43 {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// actChain is the RFC 8693 act claim of a run: its parent, whose act is the
// grandparent, and so on.
func actChain(run *writ.Run, td string) *token.Actor {
	var act *token.Actor
	for i := len(run.Chain) - 1; i >= 0; i-- {
		l := run.Chain[i]
		act = &token.Actor{Subject: (&writ.Run{ID: l.Run, Agent: l.Agent}).SPIFFEID(td), Act: act}
	}
	return act
}
