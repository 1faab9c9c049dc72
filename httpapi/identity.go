package httpapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/token"
)

// Token lifetimes (DESIGN.md §4.2). Never past the run's deadline.
const (
	unboundTTL = 5 * time.Minute  // bearer tokens: API, MCP, downstream
	boundTTL   = 15 * time.Minute // DPoP-bound API tokens
	// proofMemory is how long after its iat a DPoP proof's jti is
	// remembered: longer than any proof is accepted (token.MaxProofAge plus
	// the leeway), with a margin.
	proofMemory = token.MaxProofAge + 2*time.Minute
)

// IdentityKeys is what the API needs of the identity key set.
type IdentityKeys interface {
	Current() *token.Signer
	Lookup(kid string) (*ecdsa.PublicKey, bool)
	Published() []token.PublicKey
}

// apiAudience is the audience of run API tokens: <publicURL>/v1.
func (a *API) apiAudience() string { return a.cfg.PublicURL + "/v1" }

// mint issues a JWT-SVID for run with one audience. jkt binds it to a
// DPoP key; ttl is capped by the run's deadline.
func (a *API) mint(run *writ.Run, audience, jkt string, ttl time.Duration, now time.Time) (string, *token.Claims, error) {
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
		Issuer: a.cfg.PublicURL, Subject: run.SPIFFEID(a.cfg.TrustDomain), Audience: audience,
		IssuedAt: now, NotBefore: now, Expiry: exp,
		Run: string(run.ID), Agent: run.Agent, Profile: run.Profile, Ticket: run.Ticket.System + ":" + run.Ticket.ID,
		JKT: jkt, Act: actChain(run, a.cfg.TrustDomain),
	}
	raw, err := a.cfg.Identity.Current().Mint(c)
	if err != nil {
		return "", nil, err
	}
	return raw, c, nil
}

// tokenEvent records a minted token: never the token, only its id.
func tokenEvent(run *writ.Run, c *token.Claims, actor string) *writ.Event {
	d := map[string]any{"jti": c.ID, "aud": c.Audience, "exp": c.Expiry, "bound": c.JKT != ""}
	if c.JKT != "" {
		d["jkt"] = c.JKT
	}
	return &writ.Event{Type: writ.EventTokenIssued, Run: run.ID, Actor: actor, Subject: c.Subject, Details: d}
}

// checkProof verifies the DPoP proof of a request (RFC 9449): its
// signature, htm, htu (the public URL of the path, never the Host header),
// iat, ath when accessToken is set, and jkt when set; then records its jti
// as used, in the store, so a replay on any replica is refused.
func (a *API) checkProof(r *http.Request, accessToken, jkt string) (*token.ProofClaims, error) {
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return nil, writ.Errorf(writ.KindUnauthenticated, "invalid_dpop_proof", "send exactly one DPoP header with a proof made for this request")
	}
	now := a.now()
	pc, err := token.VerifyProof(proofs[0], token.ProofCheck{
		Method: r.Method, URL: a.cfg.PublicURL + r.URL.EscapedPath(), AccessToken: accessToken, JKT: jkt,
		Now: now, Leeway: time.Minute,
	})
	if err != nil {
		return nil, err
	}
	// Remember the jti until the proof could no longer be accepted anyway:
	// its iat plus the maximum age plus leeway, and a margin.
	if err := a.cfg.Store.UseProof(r.Context(), pc.JKT, pc.JTI, pc.IssuedAt.Add(proofMemory)); err != nil {
		return nil, err
	}
	return pc, nil
}

// authenticateRun checks a run's JWT-SVID: bearer only when unbound, DPoP
// with a fresh proof when bound; then the run's state, on every request.
func (a *API) authenticateRun(r *http.Request, scheme, raw string, allowSuspended bool) (*writ.Principal, error) {
	c, err := a.verifyRunToken(raw)
	if err != nil {
		a.metrics.authFailures.WithLabelValues("run_token").Inc()
		return nil, err
	}
	switch {
	case c.JKT != "" && !strings.EqualFold(scheme, "DPoP"):
		a.metrics.authFailures.WithLabelValues("dpop_missing").Inc()
		return nil, writ.Errorf(writ.KindUnauthenticated, "dpop_required", "this token is bound to a DPoP key: send Authorization: DPoP <token> with a DPoP proof made by that key")
	case c.JKT == "" && strings.EqualFold(scheme, "DPoP"):
		return nil, writ.Errorf(writ.KindUnauthenticated, "invalid_token", "the DPoP scheme needs a DPoP-bound token")
	}
	id, err := writ.ParseRunID(c.Run)
	if err != nil {
		return nil, errBadToken
	}
	run, err := a.runs.get(r.Context(), id)
	if err != nil {
		if writ.ErrorKind(err) == writ.KindNotFound {
			return nil, errBadToken
		}
		return nil, err
	}
	now := a.now()
	live := run.LiveAt(now) || (allowSuspended && run.State == writ.RunSuspended && now.Before(run.Deadline))
	if !live {
		// Refused before its proof is checked: the proof's jti would be
		// written to the store, and a stopped run's requests (a looping
		// agent, a flood) must cost no writes.
		a.metrics.authFailures.WithLabelValues("run_not_active").Inc()
		state := run.State
		if !now.Before(run.Deadline) && !state.Final() {
			state = writ.RunExpired
		}
		return nil, writ.Errorf(writ.KindUnauthenticated, "token_revoked", "run %s is %s: its tokens are refused", run.ID, state)
	}
	if c.JKT != "" {
		if _, err := a.checkProof(r, raw, c.JKT); err != nil {
			a.metrics.authFailures.WithLabelValues("dpop_proof").Inc()
			return nil, err
		}
	}
	return &writ.Principal{Kind: writ.PrincipalRun, Name: c.Subject, Run: id, JKT: c.JKT}, nil
}

func (a *API) verifier() *token.Verifier {
	return &token.Verifier{Keys: a.cfg.Identity.Lookup, Issuer: a.cfg.PublicURL, Leeway: time.Minute, Now: a.now}
}

// openIDConfiguration is the OIDC discovery document relying parties
// (Vault's JWT auth, cloud STS, go-oidc) use to trust run identities.
func (a *API) openIDConfiguration(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "public, max-age=300")
	return writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                a.cfg.PublicURL,
		"jwks_uri":                              a.cfg.PublicURL + "/.well-known/jwks.json",
		"id_token_signing_alg_values_supported": []string{token.Algorithm},
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"claims_supported":                      []string{"sub", "aud", "exp", "iat", "nbf", "jti", "iss", "run", "agent", "profile", "ticket", "cnf", "act"},
		"dpop_signing_alg_values_supported":     []string{token.Algorithm},
	})
}

func (a *API) jwks(w http.ResponseWriter, r *http.Request) error {
	doc, err := token.JWKS(a.cfg.Identity.Published())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(doc)
	return err
}

// RunTokenRequest asks for a token of the calling run for another audience.
type RunTokenRequest struct {
	Audience string `json:"audience"`
	// Bind asks for a DPoP-bound API token (a refresh of the caller's own);
	// otherwise the token is an unbound ≤ 5-minute bearer token.
	Bind bool `json:"bind"`
}

// RunTokenResponse carries a minted token.
type RunTokenResponse struct {
	Token     string    `json:"token"`
	TokenType string    `json:"tokenType"`
	Audience  string    `json:"audience"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// mintToken is POST /v1/runs/{id}/token: only the DPoP-bound holder of a
// run's API token may mint, so an unbound token can never mint another.
func (a *API) mintToken(w http.ResponseWriter, r *http.Request) error {
	p := writ.PrincipalFromContext(r.Context())
	if p.JKT == "" {
		return writ.Errorf(writ.KindDenied, "dpop_required", "only the DPoP-bound holder of the run's token may mint tokens; an unbound token cannot mint another")
	}
	var req RunTokenRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Audience == "" {
		req.Audience = a.apiAudience()
	}
	if !a.audienceAllowed(req.Audience) {
		return writ.Errorf(writ.KindDenied, "audience_not_allowed", "audience %q is not one writ issues tokens for: use %s or a configured audience", req.Audience, a.apiAudience())
	}
	if req.Bind && req.Audience != a.apiAudience() {
		return writ.Errorf(writ.KindInvalid, "invalid_request", "only API tokens (audience %s) are DPoP-bound", a.apiAudience())
	}
	run, err := a.runs.get(r.Context(), p.Run)
	if err != nil {
		return err
	}
	jkt, ttl, typ := "", unboundTTL, "Bearer"
	if req.Bind {
		jkt, ttl, typ = p.JKT, boundTTL, "DPoP"
	}
	now := a.now()
	raw, c, err := a.mint(run, req.Audience, jkt, ttl, now)
	if err != nil {
		return err
	}
	if err := a.cfg.Store.AppendEvent(r.Context(), tokenEvent(run, c, p.Actor())); err != nil {
		return err
	}
	a.log.DebugContext(r.Context(), "token minted", slog.String("run", string(run.ID)), slog.String("aud", c.Audience), slog.String("jti", c.ID))
	return writeJSON(w, http.StatusCreated, RunTokenResponse{Token: raw, TokenType: typ, Audience: c.Audience, ExpiresAt: c.Expiry})
}

func (a *API) audienceAllowed(aud string) bool {
	if aud == a.apiAudience() || a.mcpAudience(aud) {
		return true
	}
	for _, x := range a.cfg.Audiences {
		if x == aud {
			return true
		}
	}
	return false
}

// rotateKey is POST /v1/keys/{kind}/rotate (admins).
func (a *API) rotateKey(w http.ResponseWriter, r *http.Request) error {
	p := writ.PrincipalFromContext(r.Context())
	if err := requireAdmin(p, "rotating a key"); err != nil {
		return err
	}
	kind := r.PathValue("kind")
	if kind != "identity" {
		return writ.Errorf(writ.KindInvalid, "unsupported_key", "only the identity key can be rotated by this server version (asked: %q)", kind)
	}
	kid, err := a.cfg.RotateIdentity(r.Context(), p.Actor())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]string{"kind": kind, "kid": kid})
}

// verifiedTokens remembers API tokens whose signature and claims were
// verified, by SHA-256 of the token, until they expire: a run presents the
// same token on every request for up to 15 minutes, and its ES256 check
// is most of a request's cost. Only the signature and the fixed claims are
// remembered; expiry, the run's state and (for bound tokens) a fresh DPoP
// proof are still checked on every request. A key stays published until
// every token it signed has expired, so a remembered token never outlives
// its key.
type verifiedTokens struct {
	mu  sync.Mutex
	m   map[[32]byte]*token.Claims
	max int
}

// verifyRunToken verifies raw as a run API token, through the cache.
func (a *API) verifyRunToken(raw string) (*token.Claims, error) {
	key := sha256.Sum256([]byte(raw))
	now := a.now()
	a.verified.mu.Lock()
	c, ok := a.verified.m[key]
	a.verified.mu.Unlock()
	// The time checks are the verifier's, repeated on every hit: the
	// clock moves (or steps back) while the token is remembered.
	if ok && now.Before(c.Expiry.Add(time.Minute)) && !now.Before(c.IssuedAt.Add(-time.Minute)) &&
		(c.NotBefore.IsZero() || !now.Before(c.NotBefore.Add(-time.Minute))) {
		return c, nil
	}
	c, err := a.verifier().Verify(raw, a.apiAudience())
	if err != nil {
		return nil, err
	}
	a.verified.mu.Lock()
	if a.verified.m == nil || len(a.verified.m) >= a.verified.max {
		a.verified.m = make(map[[32]byte]*token.Claims)
	}
	a.verified.m[key] = c
	a.verified.mu.Unlock()
	return c, nil
}

// MintDownstream mints an unbound ≤ 5-minute JWT-SVID of run for a
// configured downstream audience (Vault's JWT auth, for the broker), and
// records it as a token.issued event by actor.
func (a *API) MintDownstream(ctx context.Context, run *writ.Run, audience, actor string) (string, error) {
	if !a.audienceAllowed(audience) {
		return "", writ.Errorf(writ.KindInvalid, "audience_not_allowed", "audience %q is not configured (identity.audiences)", audience)
	}
	raw, c, err := a.mint(run, audience, "", unboundTTL, a.now())
	if err != nil {
		return "", err
	}
	if err := a.cfg.Store.AppendEvent(ctx, tokenEvent(run, c, actor)); err != nil {
		return "", err
	}
	return raw, nil
}
