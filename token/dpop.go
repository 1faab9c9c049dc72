package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/writ-dev/writ"
)

// MaxProofAge is how old a DPoP proof's iat may be (plus the leeway).
const MaxProofAge = 60 * time.Second

// proofType is the typ of a DPoP proof (RFC 9449 §4.2).
const proofType = "dpop+jwt"

// maxProofSize caps a proof before any parsing; a proof with a P-256 jwk
// is under 1 KiB.
const maxProofSize = 8 << 10

// maxProofJTILen caps the jti the caller stores for replay detection.
const maxProofJTILen = 256

// NewDPoPKey generates an ECDSA P-256 key for a DPoP client.
func NewDPoPKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

type proofPayload struct {
	Jti string `json:"jti"`
	Htm string `json:"htm"`
	Htu string `json:"htu"`
	Iat int64  `json:"iat"`
	Ath string `json:"ath,omitempty"`
}

type parsedProof struct {
	Jti string       `json:"jti"`
	Htm string       `json:"htm"`
	Htu string       `json:"htu"`
	Iat *numericDate `json:"iat"`
	Ath *string      `json:"ath"`
}

// Proof makes a DPoP proof (RFC 9449 §4.2) for one request: a JWT with the
// header {"typ":"dpop+jwt","alg":"ES256","jwk":<the public key>} and the
// claims jti (128 random bits), htm (method), htu (url without query and
// fragment, normalized as VerifyProof compares it), iat (now) and, when
// accessToken is not empty, ath (base64url SHA-256 of accessToken).
func Proof(key *ecdsa.PrivateKey, method, url, accessToken string, now time.Time) (string, error) {
	if key == nil {
		return "", errors.New("dpop proof: no key")
	}
	if _, _, err := p256Coordinates(&key.PublicKey); err != nil {
		return "", fmt.Errorf("dpop proof: %w", err)
	}
	if method == "" {
		return "", errors.New("dpop proof: no method")
	}
	htu, err := normalizeHTU(url)
	if err != nil {
		return "", fmt.Errorf("dpop proof: %w", err)
	}
	if now.Unix() < 0 || now.Unix() > maxNumericDate {
		return "", errors.New("dpop proof: now is out of range")
	}
	js, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(proofType),
	)
	if err != nil {
		return "", fmt.Errorf("dpop proof: %w", err)
	}
	p := proofPayload{Jti: newJTI(), Htm: method, Htu: htu, Iat: now.Unix()}
	if accessToken != "" {
		p.Ath = accessTokenHash(accessToken)
	}
	payload, err := json.Marshal(&p)
	if err != nil {
		return "", fmt.Errorf("dpop proof: %w", err)
	}
	jws, err := js.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("dpop proof: %w", err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("dpop proof: %w", err)
	}
	return out, nil
}

// ProofCheck is what VerifyProof checks a proof against: the request it came
// with and, for a bound token, the token and its key binding.
type ProofCheck struct {
	// Method and URL are the request's method and absolute URL, the
	// expected htm and htu. htm is compared exactly; htu after normalizing
	// both sides: scheme and host lower-cased, the default port removed, an
	// empty path made "/", percent-encoding normalized (RFC 3986 §6.2.2),
	// query and fragment dropped. Dot segments are not resolved, so a proof
	// for "/a/../b" does not match "/b".
	Method string
	URL    string
	// AccessToken, when not empty, is the access token of the request: the
	// proof must carry ath, the base64url SHA-256 of it.
	AccessToken string
	// JKT, when not empty, is the token's cnf.jkt: the proof's key must have
	// this thumbprint.
	JKT string
	// Now is the server's clock; it must be set. The proof's iat must lie in
	// [Now-MaxProofAge-Leeway, Now+Leeway]; Leeway is clamped to
	// [0, MaxLeeway].
	Now    time.Time
	Leeway time.Duration
}

// ProofClaims is what a verified proof says: the thumbprint of its key (the
// jkt), its jti, and when it was made.
type ProofClaims struct {
	JKT      string
	JTI      string
	IssuedAt time.Time
}

// VerifyProof checks one DPoP proof against c, in this order: the proof is
// at most 8 KiB and a compact JWS; its jwk header holds no private key
// member; alg is ES256 (the only algorithm accepted, as for tokens: writ's
// clients make P-256 keys with NewDPoPKey, and one algorithm leaves no
// alg/key-type pairing to get wrong); typ is "dpop+jwt" (so an access token
// is never accepted as a proof); the jwk is a P-256 public key and the
// signature verifies under it; jti is present; htm and htu match the
// request; iat is in the window; ath matches c.AccessToken when it is set;
// the key's thumbprint equals c.JKT when it is set.
//
// VerifyProof does not detect replays: the caller records the returned
// (JKT, JTI) for at least MaxProofAge plus twice the leeway and refuses a
// pair it has seen. Identify proofs by that pair, never by their bytes.
//
// Errors are *writ.Error values of kind writ.KindUnauthenticated and code
// CodeInvalidDPoPProof whose message says which check failed; they never
// contain the proof or the token. A ProofCheck without Method, URL or Now is
// a plain (internal) error.
func VerifyProof(proof string, c ProofCheck) (*ProofClaims, error) {
	if c.Method == "" {
		return nil, errors.New("verify dpop proof: the check has no method")
	}
	if c.Now.IsZero() {
		return nil, errors.New("verify dpop proof: the check has no clock (Now)")
	}
	wantHTU, err := normalizeHTU(c.URL)
	if err != nil {
		return nil, fmt.Errorf("verify dpop proof: the check's URL: %w", err)
	}
	leeway := clampLeeway(c.Leeway)

	if len(proof) > maxProofSize {
		return nil, badProof("the DPoP proof is over 8 KiB; make it with a P-256 key and the standard claims only")
	}
	if !compactShape(proof) {
		return nil, badProof("the DPoP proof is not a compact JWS (three base64url parts separated by dots)")
	}
	if err := refusePrivateJWK(proof); err != nil {
		return nil, err
	}
	jws, err := jose.ParseSignedCompact(proof, es256Only)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, badProof("the DPoP proof's alg is not ES256, the only one writ accepts; sign proofs with an ECDSA P-256 key")
		}
		return nil, badProof("the DPoP proof's header or encoding is malformed")
	}
	if len(jws.Signatures) != 1 {
		return nil, badProof("the DPoP proof must carry exactly one signature")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, proofType) {
		return nil, badProof("the DPoP proof's typ is not dpop+jwt (an access token is not a proof); send a proof made for this request")
	}
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return nil, badProof("the DPoP proof has a crit header, which writ does not support")
	}
	if _, ok := h.ExtraHeaders["b64"]; ok {
		return nil, badProof("the DPoP proof has a b64 header, which writ does not support")
	}
	if h.JSONWebKey == nil {
		return nil, badProof("the DPoP proof has no jwk header; put the public key in it")
	}
	pub, ok := h.JSONWebKey.Key.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() || !h.JSONWebKey.IsPublic() {
		return nil, badProof("the DPoP proof's jwk is not an EC P-256 public key")
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return nil, badProof("the DPoP proof's signature does not verify under its jwk")
	}
	var p parsedProof
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, badProof("the DPoP proof's claims are malformed")
	}
	if p.Jti == "" || len(p.Jti) > maxProofJTILen {
		return nil, badProof("the DPoP proof needs a jti of 1 to %d characters", maxProofJTILen)
	}
	if p.Htm != c.Method {
		return nil, badProof("the DPoP proof's htm is not the request method %s; make a new proof for this request", c.Method)
	}
	if got, err := normalizeHTU(p.Htu); err != nil || got != wantHTU {
		return nil, badProof("the DPoP proof's htu is not this request's URL %s; make a new proof for this request", wantHTU)
	}
	if p.Iat == nil {
		return nil, badProof("the DPoP proof has no iat")
	}
	iat := p.Iat.time()
	if iat.Before(c.Now.Add(-MaxProofAge - leeway)) {
		return nil, badProof("the DPoP proof is older than %s (iat); make a new proof for each request", MaxProofAge)
	}
	if iat.After(c.Now.Add(leeway)) {
		return nil, badProof("the DPoP proof was made in the future (iat); check the clocks of this machine and of the writ server")
	}
	if c.AccessToken != "" {
		if p.Ath == nil {
			return nil, badProof("the DPoP proof has no ath; a request with an access token needs a proof bound to it")
		}
		want := accessTokenHash(c.AccessToken)
		if subtle.ConstantTimeCompare([]byte(*p.Ath), []byte(want)) != 1 {
			return nil, badProof("the DPoP proof's ath is not the hash of this request's access token; make a proof for the token you send")
		}
	}
	jkt, err := Thumbprint(pub)
	if err != nil {
		return nil, badProof("the DPoP proof's jwk is not an EC P-256 public key")
	}
	if c.JKT != "" && subtle.ConstantTimeCompare([]byte(jkt), []byte(c.JKT)) != 1 {
		return nil, badProof("the DPoP proof is signed by another key than the one the token is bound to (cnf.jkt); sign proofs with the token's DPoP key")
	}
	return &ProofClaims{JKT: jkt, JTI: p.Jti, IssuedAt: iat}, nil
}

func badProof(format string, args ...any) *writ.Error {
	return writ.Errorf(writ.KindUnauthenticated, CodeInvalidDPoPProof, format, args...)
}

// privateJWKMembers are the JWK members that hold private key material
// (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// refusePrivateJWK refuses a proof whose jwk header holds private key
// material (RFC 9449 §4.2: the jwk "MUST NOT contain a private key"). It
// reads the header itself, so the refusal does not depend on what the JOSE
// library does with such a key.
func refusePrivateJWK(proof string) error {
	seg, _, _ := strings.Cut(proof, ".")
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return badProof("the DPoP proof's header is not base64url")
	}
	var hdr struct {
		JWK map[string]json.RawMessage `json:"jwk"`
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return badProof("the DPoP proof's header is not a JSON object with a jwk object")
	}
	for _, m := range privateJWKMembers {
		if _, ok := hdr.JWK[m]; ok {
			return badProof("the DPoP proof's jwk contains a private key member (%q); put only the public key in the header, and make a new key: this one has been disclosed", m)
		}
	}
	return nil
}

// accessTokenHash is the ath of a token: base64url(SHA-256(token)).
func accessTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// normalizeHTU normalizes an absolute http(s) URL for comparison as a DPoP
// htu: scheme and host lower-cased, the scheme's default port removed, an
// empty path made "/", percent-encoding normalized, query and fragment
// dropped. User info and non-http(s) schemes are refused.
func normalizeHTU(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("the URL does not parse")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", errors.New("the URL is not an absolute http or https URL")
	}
	if u.Opaque != "" || u.User != nil {
		return "", errors.New("the URL has an opaque part or user info")
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", errors.New("the URL has no host")
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port := u.Port(); port != "" && !(scheme == "https" && port == "443") && !(scheme == "http" && port == "80") {
		host += ":" + port
	}
	path := normalizePercent(u.EscapedPath())
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// normalizePercent applies RFC 3986 §6.2.2.1 and §6.2.2.2 to an escaped
// path: percent-encoded unreserved characters are decoded and the hex
// digits of the others upper-cased.
func normalizePercent(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+2 >= len(p) {
			b.WriteByte(p[i])
			continue
		}
		hi, lo := unhex(p[i+1]), unhex(p[i+2])
		if hi < 0 || lo < 0 {
			b.WriteByte(p[i])
			continue
		}
		c := byte(hi<<4 | lo)
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			const hex = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
		i += 2
	}
	return b.String()
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
