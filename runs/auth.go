package runs

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/token"
)

// Access says who may make a call.
type Access int

// Access bits, combined with |.
const (
	Humans          Access = 1 << iota // any configured human with an API token
	OwnRun                             // a run, while active, acting on itself
	OwnRunSuspended                    // … and while suspended (end, heartbeat)
	TokenRun                           // the run named by its own token, while active (calls that name no run)
)

// Proof is the DPoP proof a call carried (RFC 9449) and what it must have
// been made for: the HTTP method and the escaped path, which with the
// public URL is the proof's htu (never the Host header).
type Proof struct {
	Headers []string // every DPoP header value; a valid call has exactly one
	Method  string
	Path    string
}

// ErrBadToken is the answer to every refused API token: a caller learns
// nothing about which part was wrong.
var ErrBadToken = writ.Errorf(writ.KindUnauthenticated, "invalid_token", "the API token is not valid: it is unknown, malformed, expired, or its human is no longer configured; create one with `writ token create`")

// Authenticate checks a caller's credential — the Authorization header's
// value, "Bearer <token>" or "DPoP <token>" — and returns who is calling:
// a human with an API token, or a run with its JWT-SVID (bearer when
// unbound, DPoP with a fresh proof when bound, and the run live on every
// call). allow says which callers the call accepts; a run's call on a run
// it names must still be checked against that name by the caller
// ([OwnRun] and [OwnRunSuspended]).
func (s *Service) Authenticate(ctx context.Context, authorization string, proof Proof, allow Access) (*writ.Principal, error) {
	scheme, cred, _ := strings.Cut(authorization, " ")
	cred = strings.TrimSpace(cred)
	bearer, dpop := strings.EqualFold(scheme, "Bearer"), strings.EqualFold(scheme, "DPoP")
	runsAllowed := allow&(OwnRun|OwnRunSuspended|TokenRun) != 0
	switch {
	case authorization == "":
		return nil, writ.Errorf(writ.KindUnauthenticated, "missing_credential", "this route needs a credential: send Authorization: Bearer <token> (WRIT_TOKEN for the CLI)")
	case !bearer && !dpop:
		return nil, writ.Errorf(writ.KindUnauthenticated, "missing_credential", "the Authorization header must use the Bearer or DPoP scheme")
	case cred == "":
		return nil, writ.Errorf(writ.KindUnauthenticated, "missing_credential", "the Authorization header has a scheme but no token")
	case bearer && writ.LooksLikeHumanToken(cred):
		p, err := s.AuthenticateHuman(ctx, cred)
		if err != nil {
			return nil, err
		}
		if allow&Humans == 0 {
			return nil, writ.Errorf(writ.KindDenied, "run_only", "this route is for a run's own token, not a human's")
		}
		return p, nil
	case strings.Count(cred, ".") != 2:
		// Neither a human token nor shaped like a JWT: the same answer as
		// any other bad token.
		s.metrics.authFailures.WithLabelValues("malformed").Inc()
		return nil, ErrBadToken
	case !runsAllowed:
		// A valid run token on a human route is told so; anything else
		// gets the answer of any other bad token.
		if _, err := s.verifier().Verify(cred, s.APIAudience()); err == nil {
			return nil, writ.Errorf(writ.KindDenied, "human_only", "this route needs a human's API token; a run's token cannot call it")
		}
		s.metrics.authFailures.WithLabelValues("malformed").Inc()
		return nil, ErrBadToken
	default:
		return s.authenticateRun(ctx, dpop, cred, proof, allow&OwnRunSuspended != 0)
	}
}

// AuthenticateHuman checks a human's API token, however it came (a Bearer
// header, git's Basic password, the web UI's sign-in form). Every failure
// gives the same answer.
func (s *Service) AuthenticateHuman(ctx context.Context, cred string) (*writ.Principal, error) {
	id, hash, ok := writ.SplitHumanToken(cred)
	if !ok || !writ.LooksLikeHumanToken(cred) {
		s.metrics.authFailures.WithLabelValues("malformed").Inc()
		return nil, ErrBadToken
	}
	tok, err := s.cfg.Store.GetToken(ctx, id)
	if err != nil {
		if writ.ErrorKind(err) == writ.KindNotFound {
			s.metrics.authFailures.WithLabelValues("unknown").Inc()
			return nil, ErrBadToken
		}
		return nil, err
	}
	if !tok.Matches(hash) {
		s.metrics.authFailures.WithLabelValues("mismatch").Inc()
		return nil, ErrBadToken
	}
	if !s.now().Before(tok.ExpiresAt) {
		s.metrics.authFailures.WithLabelValues("expired").Inc()
		return nil, ErrBadToken
	}
	h, ok := s.cfg.Humans[tok.Human]
	if !ok {
		s.metrics.authFailures.WithLabelValues("unconfigured").Inc()
		s.log.WarnContext(ctx, "token of a human no longer configured", slog.String("token_id", tok.ID), slog.String("human", tok.Human))
		return nil, ErrBadToken
	}
	return &writ.Principal{Kind: writ.PrincipalHuman, Name: h.Name, Groups: h.Groups}, nil
}

// authenticateRun checks a run's JWT-SVID: bearer only when unbound, DPoP
// with a fresh proof when bound; then the run's state, on every call.
func (s *Service) authenticateRun(ctx context.Context, dpop bool, raw string, proof Proof, allowSuspended bool) (*writ.Principal, error) {
	c, err := s.verifyRunToken(raw)
	if err != nil {
		s.metrics.authFailures.WithLabelValues("run_token").Inc()
		return nil, err
	}
	switch {
	case c.JKT != "" && !dpop:
		s.metrics.authFailures.WithLabelValues("dpop_missing").Inc()
		return nil, writ.Errorf(writ.KindUnauthenticated, "dpop_required", "this token is bound to a DPoP key: send Authorization: DPoP <token> with a DPoP proof made by that key")
	case c.JKT == "" && dpop:
		return nil, writ.Errorf(writ.KindUnauthenticated, "invalid_token", "the DPoP scheme needs a DPoP-bound token")
	}
	id, err := writ.ParseRunID(c.Run)
	if err != nil {
		return nil, ErrBadToken
	}
	run, err := s.cache.get(ctx, id)
	if err != nil {
		if writ.ErrorKind(err) == writ.KindNotFound {
			return nil, ErrBadToken
		}
		return nil, err
	}
	now := s.now()
	live := run.LiveAt(now) || (allowSuspended && run.State == writ.RunSuspended && now.Before(run.Deadline))
	if !live {
		// Refused before its proof is checked: the proof's jti would be
		// written to the store, and a stopped run's requests (a looping
		// agent, a flood) must cost no writes.
		s.metrics.authFailures.WithLabelValues("run_not_active").Inc()
		state := run.State
		if !now.Before(run.Deadline) && !state.Final() {
			state = writ.RunExpired
		}
		return nil, writ.Errorf(writ.KindUnauthenticated, "token_revoked", "run %s is %s: its tokens are refused", run.ID, state)
	}
	if c.JKT != "" {
		if _, err := s.checkProof(ctx, proof, raw, c.JKT); err != nil {
			s.metrics.authFailures.WithLabelValues("dpop_proof").Inc()
			return nil, err
		}
	}
	return &writ.Principal{Kind: writ.PrincipalRun, Name: c.Subject, Run: id, JKT: c.JKT}, nil
}

// checkProof verifies a DPoP proof (RFC 9449): its signature, htm, htu
// (the public URL of the path), iat, ath when accessToken is set, and jkt
// when set; then records its jti as used, in the store, so a replay on
// any replica is refused.
func (s *Service) checkProof(ctx context.Context, proof Proof, accessToken, jkt string) (*token.ProofClaims, error) {
	if len(proof.Headers) != 1 {
		return nil, writ.Errorf(writ.KindUnauthenticated, "invalid_dpop_proof", "send exactly one DPoP header with a proof made for this request")
	}
	pc, err := token.VerifyProof(proof.Headers[0], token.ProofCheck{
		Method: proof.Method, URL: s.cfg.PublicURL + proof.Path, AccessToken: accessToken, JKT: jkt,
		Now: s.now(), Leeway: time.Minute,
	})
	if err != nil {
		return nil, err
	}
	// Remember the jti until the proof could no longer be accepted anyway:
	// its iat plus the maximum age plus leeway, and a margin.
	if err := s.cfg.Store.UseProof(ctx, pc.JKT, pc.JTI, pc.IssuedAt.Add(proofMemory)); err != nil {
		return nil, err
	}
	return pc, nil
}

// VerifyResourceToken verifies raw as an unbound run token whose audience
// is exactly audience (an MCP server's resource), and returns its run and
// expiry. A DPoP-bound token is an API token and is refused.
func (s *Service) VerifyResourceToken(raw, audience string) (writ.RunID, time.Time, error) {
	c, err := s.verifier().Verify(raw, audience)
	if err != nil {
		s.metrics.authFailures.WithLabelValues("mcp_token").Inc()
		return "", time.Time{}, err
	}
	if c.JKT != "" {
		return "", time.Time{}, writ.Errorf(writ.KindUnauthenticated, "invalid_token", "a DPoP-bound token cannot be used as a bearer token")
	}
	id, err := writ.ParseRunID(c.Run)
	if err != nil {
		return "", time.Time{}, ErrBadToken
	}
	return id, c.Expiry, nil
}

func (s *Service) verifier() *token.Verifier {
	return &token.Verifier{Keys: s.cfg.Identity.Lookup, Issuer: s.cfg.PublicURL, Leeway: time.Minute, Now: s.now}
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
func (s *Service) verifyRunToken(raw string) (*token.Claims, error) {
	key := sha256.Sum256([]byte(raw))
	now := s.now()
	s.verified.mu.Lock()
	c, ok := s.verified.m[key]
	s.verified.mu.Unlock()
	// The time checks are the verifier's, repeated on every hit: the
	// clock moves (or steps back) while the token is remembered.
	if ok && now.Before(c.Expiry.Add(time.Minute)) && !now.Before(c.IssuedAt.Add(-time.Minute)) &&
		(c.NotBefore.IsZero() || !now.Before(c.NotBefore.Add(-time.Minute))) {
		return c, nil
	}
	c, err := s.verifier().Verify(raw, s.APIAudience())
	if err != nil {
		return nil, err
	}
	s.verified.mu.Lock()
	if s.verified.m == nil || len(s.verified.m) >= s.verified.max {
		s.verified.m = make(map[[32]byte]*token.Claims)
	}
	s.verified.m[key] = c
	s.verified.mu.Unlock()
	return c, nil
}
