package runs

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/token"
)

// Token lifetimes (docs/design.md §4.2). Never past the run's deadline.
const (
	unboundTTL = 5 * time.Minute  // bearer tokens: API, MCP, downstream
	boundTTL   = 15 * time.Minute // DPoP-bound API tokens
	// proofMemory is how long after its iat a DPoP proof's jti is
	// remembered: longer than any proof is accepted (token.MaxProofAge plus
	// the leeway), with a margin.
	proofMemory = token.MaxProofAge + 2*time.Minute
)

// Human API token lifetimes.
const (
	DefaultHumanTokenTTL = 30 * 24 * time.Hour
	MaxHumanTokenTTL     = 366 * 24 * time.Hour
)

// Token is a minted run token.
type Token struct {
	Token     string
	Type      string // "Bearer" (unbound) or "DPoP" (bound)
	Audience  string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// mint issues a JWT-SVID for run with one audience. jkt binds it to a
// DPoP key; ttl is capped by the run's deadline.
func (s *Service) mint(run *writ.Run, audience, jkt string, ttl time.Duration, now time.Time) (string, *token.Claims, error) {
	exp := now.Add(ttl)
	if exp.After(run.Deadline) {
		exp = run.Deadline
	}
	// Times are whole seconds in a token: with less than that left, exp
	// would not be after iat, and Mint would fail as an internal error.
	if exp.Unix() <= now.Unix() {
		return "", nil, writ.Errorf(writ.KindUnauthenticated, "token_revoked", "run %s reaches its deadline within the second: no token can be issued for it", run.ID)
	}
	c := &token.Claims{
		Issuer: s.cfg.PublicURL, Subject: run.SPIFFEID(s.cfg.TrustDomain), Audience: audience,
		IssuedAt: now, NotBefore: now, Expiry: exp,
		Run: string(run.ID), Agent: run.Agent, Profile: run.Profile, Ticket: run.Ticket.System + ":" + run.Ticket.ID,
		JKT: jkt, Act: actChain(run, s.cfg.TrustDomain),
	}
	raw, err := s.cfg.Identity.Current().Mint(c)
	if err != nil {
		return "", nil, err
	}
	return raw, c, nil
}

// firstToken mints a new run's first API token: DPoP-bound to jkt, or an
// unbound ≤ 5-minute bearer token without one.
func (s *Service) firstToken(run *writ.Run, jkt string, now time.Time) (*Token, *token.Claims, error) {
	ttl, typ := unboundTTL, "Bearer"
	if jkt != "" {
		ttl, typ = boundTTL, "DPoP"
	}
	raw, c, err := s.mint(run, s.APIAudience(), jkt, ttl, now)
	if err != nil {
		return nil, nil, err
	}
	return &Token{Token: raw, Type: typ, Audience: c.Audience, IssuedAt: c.IssuedAt, ExpiresAt: c.Expiry}, c, nil
}

// tokenEvent records a minted token: never the token, only its id.
func tokenEvent(run *writ.Run, c *token.Claims, actor string) *writ.Event {
	d := map[string]any{"jti": c.ID, "aud": c.Audience, "exp": c.Expiry, "bound": c.JKT != ""}
	if c.JKT != "" {
		d["jkt"] = c.JKT
	}
	return &writ.Event{Type: writ.EventTokenIssued, Run: run.ID, Actor: actor, Subject: c.Subject, Details: d}
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

// MintToken mints a token of the calling run p for audience (empty: writ's
// API). Only the DPoP-bound holder of a run's API token may mint, so an
// unbound token never mints another; bind asks for a DPoP-bound API token
// (a refresh of the caller's own).
func (s *Service) MintToken(ctx context.Context, p *writ.Principal, audience string, bind bool) (*Token, error) {
	if p == nil || p.Kind != writ.PrincipalRun || p.JKT == "" {
		return nil, writ.Errorf(writ.KindDenied, "dpop_required", "only the DPoP-bound holder of the run's token may mint tokens; an unbound token cannot mint another")
	}
	if audience == "" {
		audience = s.APIAudience()
	}
	if !s.AudienceAllowed(audience) {
		return nil, writ.Errorf(writ.KindDenied, "audience_not_allowed", "audience %q is not one writ issues tokens for: use %s or a configured audience", audience, s.APIAudience())
	}
	if bind && audience != s.APIAudience() {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_request", "only API tokens (audience %s) are DPoP-bound", s.APIAudience())
	}
	run, err := s.cache.get(ctx, p.Run)
	if err != nil {
		return nil, err
	}
	jkt, ttl, typ := "", unboundTTL, "Bearer"
	if bind {
		jkt, ttl, typ = p.JKT, boundTTL, "DPoP"
	}
	raw, c, err := s.mint(run, audience, jkt, ttl, s.now())
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.AppendEvent(ctx, tokenEvent(run, c, p.Actor())); err != nil {
		return nil, err
	}
	s.log.DebugContext(ctx, "token minted", slog.String("run", string(run.ID)), slog.String("aud", c.Audience), slog.String("jti", c.ID))
	return &Token{Token: raw, Type: typ, Audience: c.Audience, IssuedAt: c.IssuedAt, ExpiresAt: c.Expiry}, nil
}

// MintDownstream mints an unbound ≤ 5-minute JWT-SVID of run for a
// configured downstream audience (Vault's JWT auth, for the broker), and
// records it as a token.issued event by actor.
func (s *Service) MintDownstream(ctx context.Context, run *writ.Run, audience, actor string) (string, error) {
	if !s.AudienceAllowed(audience) {
		return "", writ.Errorf(writ.KindInvalid, "audience_not_allowed", "audience %q is not configured (identity.audiences)", audience)
	}
	raw, c, err := s.mint(run, audience, "", unboundTTL, s.now())
	if err != nil {
		return "", err
	}
	if err := s.cfg.Store.AppendEvent(ctx, tokenEvent(run, c, actor)); err != nil {
		return "", err
	}
	return raw, nil
}

// AudienceAllowed reports whether writ issues run tokens for aud: its own
// API, a resource it serves (an MCP server), or a configured downstream
// audience.
func (s *Service) AudienceAllowed(aud string) bool {
	return aud == s.APIAudience() || s.resourceAllowed(aud) || slices.Contains(s.cfg.Audiences, aud)
}

// CreateHumanToken issues an API token for human (empty: the caller p)
// valid for ttl (0: the default). A token for someone else needs an
// admin. The secret is returned once and never stored.
func (s *Service) CreateHumanToken(ctx context.Context, p *writ.Principal, human string, ttl time.Duration) (string, *writ.HumanToken, error) {
	if human == "" {
		human = p.Name
	}
	if human != p.Name {
		if err := RequireAdmin(p, "creating a token for another human"); err != nil {
			return "", nil, err
		}
	}
	if _, ok := s.cfg.Humans[human]; !ok {
		return "", nil, writ.Errorf(writ.KindInvalid, "unknown_human", "%q is not a configured human signer", human)
	}
	if ttl == 0 {
		ttl = DefaultHumanTokenTTL
	}
	if ttl < time.Minute || ttl > MaxHumanTokenTTL {
		return "", nil, writ.Errorf(writ.KindInvalid, "invalid_ttl", "ttl %v: want between 1m and %v", ttl, MaxHumanTokenTTL)
	}
	secret, tok := writ.NewHumanToken(human, p.Actor(), s.now(), ttl)
	ev := &writ.Event{Type: writ.EventTokenIssued, Actor: p.Actor(), Subject: writ.HumanActor(human),
		Details: map[string]any{"kind": "human", "tokenId": tok.ID, "expiresAt": tok.ExpiresAt}}
	if err := s.cfg.Store.CreateToken(ctx, tok, ev); err != nil {
		return "", nil, err
	}
	return secret, tok, nil
}

// Discovery is the OIDC discovery document relying parties (Vault's JWT
// auth, cloud STS, go-oidc) use to trust run identities.
func (s *Service) Discovery() map[string]any {
	return map[string]any{
		"issuer":                                s.cfg.PublicURL,
		"jwks_uri":                              s.cfg.PublicURL + "/.well-known/jwks.json",
		"id_token_signing_alg_values_supported": []string{token.Algorithm},
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"claims_supported":                      []string{"sub", "aud", "exp", "iat", "nbf", "jti", "iss", "run", "agent", "profile", "ticket", "cnf", "act"},
		"dpop_signing_alg_values_supported":     []string{token.Algorithm},
	}
}

// JWKS is the published identity keys as a JWK set.
func (s *Service) JWKS() ([]byte, error) { return token.JWKS(s.cfg.Identity.Published()) }
