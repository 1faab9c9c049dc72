package runs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
	"github.com/writ-dev/writ/decision"
)

// Delegated is a child run and its first API token.
type Delegated struct {
	Run   *writ.Run
	Token *Token
}

// Delegate starts a child of the calling run p whose scope, deadline and
// depth only narrow the parent's (docs/design.md §4.5). Only the parent's
// DPoP-bound holder may delegate: the child gets a token, and an unbound
// token never mints another. Policy decides the delegation like any other
// action of the parent.
func (s *Service) Delegate(ctx context.Context, p *writ.Principal, req *api.DelegateRequest) (*Delegated, error) {
	if p == nil || p.Kind != writ.PrincipalRun || p.JKT == "" {
		return nil, writ.Errorf(writ.KindDenied, "dpop_required", "only the DPoP-bound holder of the run's token may delegate; an unbound token cannot start runs")
	}
	if err := s.checkExchange(req); err != nil {
		return nil, err
	}
	c, err := s.verifier().Verify(req.SubjectToken, s.APIAudience())
	if err != nil || c.Run != string(p.Run) {
		return nil, writ.Errorf(writ.KindDenied, "invalid_grant", "subject_token must be a valid token of run %s", p.Run)
	}
	parent, err := s.cache.get(ctx, p.Run)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if !parent.LiveAt(now) {
		return nil, writ.Errorf(writ.KindConflict, "parent_not_active", "run %s is %s: it delegates nothing", parent.ID, parent.State)
	}
	if parent.Depth+1 > s.cfg.MaxDepth {
		return nil, writ.Errorf(writ.KindDenied, "too_deep", "run %s is at depth %d; delegation goes at most %d levels deep", parent.ID, parent.Depth, s.cfg.MaxDepth)
	}
	scope, deadline, err := s.childScope(parent, req, now)
	if err != nil {
		return nil, err
	}
	if err := s.mayStart(parent, req, &scope); err != nil {
		return nil, err
	}
	digest, err := scopeDigest(scope)
	if err != nil {
		return nil, err
	}
	d, err := s.decideDelegation(ctx, p, parent, req)
	if err != nil {
		return nil, err
	}

	chain := append([]writ.ChainLink{{Run: parent.ID, Agent: parent.Agent}}, parent.Chain...)
	child := &writ.Run{
		ID: writ.RunID(writ.NewULID(now, nil)), Agent: req.Agent, Profile: req.Profile, Ticket: parent.Ticket, Task: req.Task,
		Scope: scope, ScopeDigest: digest, TriggerID: parent.TriggerID, TriggerDigest: parent.TriggerDigest,
		Issuer: parent.Issuer, SignerKey: parent.SignerKey, State: writ.RunActive, CreatedAt: now.UTC(), Deadline: deadline,
		Parent: parent.ID, Depth: parent.Depth + 1, Chain: chain,
	}
	tok, claims, err := s.firstToken(child, req.DPoPJKT, now)
	if err != nil {
		return nil, err
	}
	actor := p.Actor()
	delegated := &writ.Event{Type: writ.EventRunDelegated, Run: parent.ID, Actor: actor, Subject: string(child.ID),
		Details: map[string]any{"child": child.ID, "agent": child.Agent, "profile": child.Profile, "depth": child.Depth,
			"scopeDigest": digest, "deadline": deadline, "decision": d.ID}}
	started := &writ.Event{Type: writ.EventRunStarted, Run: child.ID, Actor: actor, Subject: child.SPIFFEID(s.cfg.TrustDomain),
		Details: map[string]any{"agent": child.Agent, "profile": child.Profile, "deadline": child.Deadline, "scopeDigest": digest,
			"triggerDigest": child.TriggerDigest, "parent": parent.ID, "depth": child.Depth}}
	if err := s.cfg.Store.CreateChildRun(ctx, child, delegated, started, tokenEvent(child, claims, actor)); err != nil {
		return nil, err
	}
	if s.cfg.OnRunCreated != nil {
		s.cfg.OnRunCreated(child)
	}
	s.log.InfoContext(ctx, "run delegated", slog.String("parent", string(parent.ID)), slog.String("child", string(child.ID)),
		slog.String("agent", child.Agent), slog.Int("depth", child.Depth))
	return &Delegated{Run: child, Token: tok}, nil
}

// checkExchange checks the RFC 8693 form of a delegation request.
func (s *Service) checkExchange(req *api.DelegateRequest) error {
	bad := func(code, format string, args ...any) error {
		return writ.Errorf(writ.KindInvalid, code, format, args...)
	}
	switch {
	case req.GrantType != "" && req.GrantType != api.GrantTokenExchange:
		return bad("unsupported_grant_type", "grant_type %q: want %s", req.GrantType, api.GrantTokenExchange)
	case req.SubjectToken == "":
		return bad("invalid_request", "subject_token is required: the parent run's token")
	case req.SubjectTokenType != "" && req.SubjectTokenType != api.TokenTypeJWT && req.SubjectTokenType != api.TokenTypeAccess:
		return bad("invalid_request", "subject_token_type %q: want %s", req.SubjectTokenType, api.TokenTypeJWT)
	case req.RequestedTokenType != "" && req.RequestedTokenType != api.TokenTypeJWT && req.RequestedTokenType != api.TokenTypeAccess:
		return bad("invalid_request", "requested_token_type %q: writ issues %s", req.RequestedTokenType, api.TokenTypeJWT)
	case req.Audience != "" && req.Audience != s.APIAudience():
		return bad("invalid_target", "audience %q: a child run's first token is for %s; mint other audiences with POST /v1/runs/{id}/token", req.Audience, s.APIAudience())
	case req.Scope == nil:
		return bad("invalid_scope", "scope is required: the child's scope, a subset of the parent's")
	case req.Agent == "" || req.Profile == "":
		return bad("invalid_request", "agent and profile name the child's identity and risk class")
	case len(req.Task) > 16<<10:
		return bad("invalid_request", "task is over 16 KiB")
	case req.DPoPJKT != "" && !validJKT(req.DPoPJKT):
		return bad("invalid_dpop_proof", "dpop_jkt %q is not an RFC 7638 SHA-256 thumbprint", req.DPoPJKT)
	}
	return nil
}

// childScope is the scope the child asks for, with its duration defaulted
// (it ends with its parent, or when its profile's longest run ends,
// whichever comes first), validated, and within the parent's; and the
// child's deadline.
func (s *Service) childScope(parent *writ.Run, req *api.DelegateRequest, now time.Time) (writ.Scope, time.Time, error) {
	scope := *req.Scope
	if scope.MaxDuration == 0 {
		scope.MaxDuration = req.MaxDuration
	}
	if scope.MaxDuration == 0 {
		d := parent.Deadline.Sub(now).Truncate(time.Second)
		if p := s.cfg.Rules.Profiles[req.Profile]; p != nil && p.MaxDuration < d {
			d = p.MaxDuration
		}
		scope.MaxDuration = writ.Duration(d)
	}
	if err := scope.Validate(); err != nil {
		return scope, time.Time{}, writ.Errorf(writ.KindInvalid, "invalid_scope", "%v", err)
	}
	deadline := now.Add(scope.MaxDuration.D()).UTC()
	if deadline.After(parent.Deadline) {
		return scope, time.Time{}, writ.Errorf(writ.KindInvalid, "deadline_after_parent", "the child would run until %s, after its parent's deadline %s; ask for at most %s",
			deadline.Format(time.RFC3339), parent.Deadline.Format(time.RFC3339), parent.Deadline.Sub(now).Truncate(time.Second))
	}
	if items := scope.Within(&parent.Scope); len(items) > 0 {
		return scope, time.Time{}, &writ.Error{Kind: writ.KindInvalid, Code: "invalid_scope", Items: items,
			Message: fmt.Sprintf("a child's scope only narrows its parent's: %d item(s) lie outside run %s's scope: %s", len(items), parent.ID, strings.Join(items, ", "))}
	}
	return scope, deadline, nil
}

// mayStart checks the child against the rules a trigger would meet: a
// registered, enabled agent under a profile it may use, a scope the two
// allow, and a signer of the parent's trigger who may start them.
func (s *Service) mayStart(parent *writ.Run, req *api.DelegateRequest, scope *writ.Scope) error {
	rules := s.cfg.Rules
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
	if sg := rules.Signers[parent.Issuer]; sg == nil || !writ.MatchAnyName(sg.MayAgents, req.Agent) || !writ.MatchAnyName(sg.MayProfiles, req.Profile) {
		return writ.Errorf(writ.KindDenied, "signer_not_allowed", "%s, who signed the trigger, may not start agent %s under profile %s, so neither may the run", parent.Issuer, req.Agent, req.Profile)
	}
	return nil
}

// decideDelegation asks policy about the delegation as an action of the
// parent. Its arguments name the scope as asked (not with a default
// duration computed from the clock), so an approval of a delegation
// covers the same request made again.
func (s *Service) decideDelegation(ctx context.Context, p *writ.Principal, parent *writ.Run, req *api.DelegateRequest) (*writ.Decision, error) {
	if s.cfg.Decider == nil {
		return nil, writ.Errorf(writ.KindUnavailable, "unavailable", "this server has no decision point: it delegates nothing")
	}
	asked, err := json.Marshal(map[string]any{"scope": req.Scope, "maxDuration": req.MaxDuration})
	if err != nil {
		return nil, err
	}
	askedSum := sha256.Sum256(asked)
	args, _ := json.Marshal(map[string]any{"agent": req.Agent, "profile": req.Profile, "scopeAsked": "sha256:" + hex.EncodeToString(askedSum[:]), "depth": parent.Depth + 1})
	d, err := s.cfg.Decider.Decide(ctx, &decision.Request{Run: parent, Actor: p.Actor(), Via: "api",
		Action: writ.Action{Kind: writ.ActionDelegate, Name: req.Agent, Args: args}})
	if err != nil {
		return nil, err
	}
	if err := writ.DecisionError(d); err != nil {
		return nil, err
	}
	return d, nil
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
