package token

import (
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/writ-dev/writ"
)

// Codes of the *writ.Error values that Verify and VerifyProof return. All
// are of kind writ.KindUnauthenticated.
const (
	CodeInvalidToken     = "invalid_token"       // malformed, bad signature, wrong alg or typ, a claim missing or invalid
	CodeUnknownKID       = "unknown_kid"         // signed by a key the KeyLookup does not know
	CodeTokenExpired     = "token_expired"       // exp has passed (beyond the leeway)
	CodeTokenNotYetValid = "token_not_yet_valid" // iat or nbf is in the future (beyond the leeway)
	CodeAudienceMismatch = "audience_mismatch"   // aud is not exactly the expected audience
	CodeIssuerMismatch   = "issuer_mismatch"     // iss is not the configured issuer
	CodeInvalidDPoPProof = "invalid_dpop_proof"  // a DPoP proof failed one of its checks
)

// MaxLeeway is the largest clock leeway a Verifier or ProofCheck applies;
// larger values are clamped to it, negative ones to zero.
const MaxLeeway = 60 * time.Second

// maxTokenSize caps a token before any parsing. writ's tokens are well under
// 2 KiB, even with a deep act chain.
const maxTokenSize = 8 << 10

// es256Only is the algorithm list handed to go-jose: anything else is
// refused while parsing, before a key is looked up.
var es256Only = []jose.SignatureAlgorithm{jose.ES256}

// KeyLookup returns the verification key with the given kid, and whether it
// is known. It must only consult keys the caller trusts; Verify never
// fetches a key.
type KeyLookup func(kid string) (*ecdsa.PublicKey, bool)

// Verifier checks JWT-SVIDs for writ's own endpoints. Its fields are read,
// never written, so one Verifier may be shared by concurrent requests.
type Verifier struct {
	Keys   KeyLookup // required: the only source of verification keys
	Issuer string    // required: the expected iss (writ's publicURL)
	// Leeway is the clock skew allowed on exp, iat and nbf, clamped to
	// [0, MaxLeeway].
	Leeway time.Duration
	Now    func() time.Time // nil means time.Now
}

// Verify parses raw as a JWT-SVID for audience and returns its claims. It
// checks, in this order, and refuses at the first failure:
//
//   - raw is at most 8 KiB and a JWS in compact serialization (so exactly
//     one signature);
//   - the header alg is ES256; typ, when present, is "JWT" (so a DPoP proof,
//     "dpop+jwt", is refused); there is no crit or b64 header;
//   - the header carries a kid that Keys knows; jku, x5u, x5c and jwk are
//     ignored and nothing is ever fetched;
//   - the signature verifies under that key;
//   - iss equals v.Issuer;
//   - aud is exactly audience: a string, or an array of one element;
//   - exp is present and after now minus the leeway;
//   - iat is present and not after now plus the leeway; nbf, when present,
//     too; and exp is after iat;
//   - nbf, when present, is before exp;
//   - sub is a SPIFFE ID, and run and jti are not empty;
//   - cnf, when present, has a jkt that is a SHA-256 thumbprint; act, when
//     present, is a well-formed chain.
//
// Errors are *writ.Error values of kind writ.KindUnauthenticated whose
// codes are the Code constants; their messages never contain the token.
// A Verifier without Keys or Issuer, or an empty audience, is a plain
// (internal) error: the caller is misconfigured.
func (v *Verifier) Verify(raw, audience string) (*Claims, error) {
	if v == nil || v.Keys == nil {
		return nil, errors.New("verify token: the verifier has no key lookup")
	}
	if v.Issuer == "" {
		return nil, errors.New("verify token: the verifier has no issuer")
	}
	if audience == "" {
		return nil, errors.New("verify token: no audience to check the token against")
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	leeway := clampLeeway(v.Leeway)

	if len(raw) > maxTokenSize {
		return nil, invalidToken("the token is over 8 KiB, so it is not one writ issued; send the token writ returned")
	}
	if !compactShape(raw) {
		return nil, invalidToken("the token is not a compact JWS (three base64url parts separated by dots); send the token exactly as writ returned it")
	}
	jws, err := jose.ParseSignedCompact(raw, es256Only)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, invalidToken("the token's algorithm is not ES256, the only one writ accepts; use a token writ issued")
		}
		return nil, invalidToken("the token's header or encoding is malformed; send the token exactly as writ returned it")
	}
	if len(jws.Signatures) != 1 {
		return nil, invalidToken("the token must carry exactly one signature")
	}
	h := jws.Signatures[0].Protected
	if typ, ok := h.ExtraHeaders[jose.HeaderType]; ok {
		if s, _ := typ.(string); !strings.EqualFold(s, "JWT") {
			return nil, invalidToken("the token's typ is not JWT (a DPoP proof or another kind of JWT is not an access token); send the access token writ issued")
		}
	}
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return nil, invalidToken("the token has a crit header, which writ never issues; send the token writ returned")
	}
	if _, ok := h.ExtraHeaders["b64"]; ok {
		return nil, invalidToken("the token has a b64 header, which writ never issues; send the token writ returned")
	}
	if h.KeyID == "" {
		return nil, invalidToken("the token's header has no kid; send a token writ issued")
	}
	pub, ok := v.Keys(h.KeyID)
	if !ok || pub == nil {
		return nil, writ.Errorf(writ.KindUnauthenticated, CodeUnknownKID,
			"the token was signed with a key this writ server does not know (kid); it is from another issuer or from a retired key: get a new token")
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return nil, invalidToken("the token's signature does not verify; it was altered or not signed by writ: get a new token")
	}

	var pc parsedClaims
	if err := json.Unmarshal(payload, &pc); err != nil {
		return nil, invalidToken("the token's claims are malformed; get a new token")
	}
	if pc.Iss != v.Issuer {
		return nil, writ.Errorf(writ.KindUnauthenticated, CodeIssuerMismatch,
			"the token was issued by another issuer than %s; get a token from this writ server", v.Issuer)
	}
	if pc.Aud == nil {
		return nil, invalidToken("the token has no aud claim; get a token for %s", audience)
	}
	if len(*pc.Aud) != 1 {
		return nil, writ.Errorf(writ.KindUnauthenticated, CodeAudienceMismatch,
			"the token names %d audiences; writ accepts only tokens for exactly one audience: get a token for %s", len(*pc.Aud), audience)
	}
	if (*pc.Aud)[0] != audience {
		return nil, writ.Errorf(writ.KindUnauthenticated, CodeAudienceMismatch,
			"the token is for another audience; get a token for %s", audience)
	}
	t := now()
	if pc.Exp == nil {
		return nil, invalidToken("the token has no exp claim; get a new token")
	}
	if !pc.Exp.time().After(t.Add(-leeway)) {
		return nil, writ.Errorf(writ.KindUnauthenticated, CodeTokenExpired,
			"the token has expired; get a new token")
	}
	if pc.Iat == nil {
		return nil, invalidToken("the token has no iat claim; get a new token")
	}
	if pc.Iat.time().After(t.Add(leeway)) {
		return nil, writ.Errorf(writ.KindUnauthenticated, CodeTokenNotYetValid,
			"the token was issued in the future (iat); check the clocks of this machine and of the writ server")
	}
	if pc.Nbf != nil && pc.Nbf.time().After(t.Add(leeway)) {
		return nil, writ.Errorf(writ.KindUnauthenticated, CodeTokenNotYetValid,
			"the token is not valid yet (nbf); retry later or check the clocks of this machine and of the writ server")
	}
	if *pc.Exp <= *pc.Iat {
		return nil, invalidToken("the token expires before it was issued; get a new token")
	}
	if pc.Nbf != nil && *pc.Nbf >= *pc.Exp {
		return nil, invalidToken("the token is never valid (nbf is not before exp); get a new token")
	}
	if !validSPIFFEID(pc.Sub) {
		return nil, invalidToken("the token's sub is not a SPIFFE ID; use a run token writ issued")
	}
	if pc.Run == "" {
		return nil, invalidToken("the token has no run claim; use a run token writ issued")
	}
	if pc.Jti == "" {
		return nil, invalidToken("the token has no jti claim; get a new token")
	}
	if pc.Cnf != nil && !validThumbprint(pc.Cnf.JKT) {
		return nil, invalidToken("the token's cnf claim has no jkt (a SHA-256 key thumbprint), the only confirmation writ can check; get a new token")
	}
	act, err := fromWireActor(pc.Act)
	if err != nil {
		return nil, invalidToken("the token's act claim is malformed: %v", err)
	}
	c := &Claims{
		Issuer:   pc.Iss,
		Subject:  pc.Sub,
		Audience: audience,
		IssuedAt: pc.Iat.time(),
		Expiry:   pc.Exp.time(),
		ID:       pc.Jti,
		Run:      pc.Run,
		Agent:    pc.Agent,
		Profile:  pc.Profile,
		Ticket:   pc.Ticket,
		Act:      act,
	}
	if pc.Nbf != nil {
		c.NotBefore = pc.Nbf.time()
	}
	if pc.Cnf != nil {
		c.JKT = pc.Cnf.JKT
	}
	return c, nil
}

func invalidToken(format string, args ...any) *writ.Error {
	return writ.Errorf(writ.KindUnauthenticated, CodeInvalidToken, format, args...)
}

func clampLeeway(d time.Duration) time.Duration {
	return min(max(d, 0), MaxLeeway)
}

// compactShape reports whether s looks like a JWS in compact serialization:
// three parts of the base64url alphabet separated by two dots, the first
// not empty, each part canonically encoded (no padding, no stray bits in
// the last character). It refuses whitespace and the JSON serialization up
// front, and it makes the bytes go-jose verifies the bytes that were sent.
func compactShape(s string) bool {
	dots, start := 0, 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if !canonicalB64(s[start:i]) {
				return false
			}
			if i < len(s) {
				dots++
			}
			start = i + 1
			continue
		}
		if b64Value(s[i]) < 0 {
			return false
		}
	}
	return dots == 2 && s[0] != '.'
}

// canonicalB64 reports whether part, already known to be of the base64url
// alphabet, is the canonical unpadded encoding of some bytes: its length is
// not 1 modulo 4 and the bits of its last character that encode nothing are
// zero.
func canonicalB64(part string) bool {
	switch len(part) % 4 {
	case 1:
		return false
	case 2:
		return b64Value(part[len(part)-1])&0x0f == 0
	case 3:
		return b64Value(part[len(part)-1])&0x03 == 0
	}
	return true
}

// b64Value is the value of a base64url character, or -1.
func b64Value(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}
