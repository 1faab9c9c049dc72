package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
)

// testNow is the fixed clock of the tests.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	testIssuer   = "https://writ.example.com"
	testAudience = "https://writ.example.com/v1"
	testRun      = "01jnmr5s0fa7q7rb4k5z1c9x2d"
	testSubject  = "spiffe://writ.example.com/agent/refactor-bot/run/" + testRun
	testURL      = "https://writ.example.com/v1/runs/" + testRun + "/actions"
)

// fixture is writ's signing key, a Verifier that knows only that key, and
// an attacker's keys.
type fixture struct {
	key    *ecdsa.PrivateKey
	kid    string
	signer *Signer
	v      *Verifier

	evil    *ecdsa.PrivateKey // an attacker's P-256 key
	evilKid string
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	f := &fixture{key: mustP256(tb), evil: mustP256(tb)}
	var err error
	if f.signer, err = NewSigner(f.key); err != nil {
		tb.Fatal(err)
	}
	f.kid = f.signer.KeyID()
	if f.evilKid, err = KeyID(&f.evil.PublicKey); err != nil {
		tb.Fatal(err)
	}
	pub := &f.key.PublicKey
	f.v = &Verifier{
		Keys: func(kid string) (*ecdsa.PublicKey, bool) {
			if kid == f.kid {
				return pub, true
			}
			return nil, false
		},
		Issuer: testIssuer,
		Leeway: 30 * time.Second,
		Now:    func() time.Time { return testNow },
	}
	return f
}

func mustP256(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// testClaims are the claims of an unbound top-level run token, valid at
// testNow.
func testClaims() *Claims {
	return &Claims{
		Issuer:   testIssuer,
		Subject:  testSubject,
		Audience: testAudience,
		IssuedAt: testNow.Add(-10 * time.Second),
		Expiry:   testNow.Add(5 * time.Minute),
		Run:      testRun,
		Agent:    "refactor-bot",
		Profile:  "refactor",
		Ticket:   "jira:ENG-1",
	}
}

// claimsMap is testClaims as a JSON object that a test may edit, to sign by
// hand.
func claimsMap() map[string]any {
	c := testClaims()
	return map[string]any{
		"iss":     c.Issuer,
		"sub":     c.Subject,
		"aud":     c.Audience,
		"iat":     c.IssuedAt.Unix(),
		"exp":     c.Expiry.Unix(),
		"jti":     "dGVzdC1qdGktMDAwMDAwMA",
		"run":     c.Run,
		"agent":   c.Agent,
		"profile": c.Profile,
		"ticket":  c.Ticket,
	}
}

// header is a JWS protected header for hand-built tokens.
type header map[string]any

// signer functions make the signature over a JWS signing input.
type signFunc func(input []byte) []byte

// buildJWS assembles a compact JWS by hand, independently of go-jose:
// base64url(header) "." base64url(payload) "." base64url(sign(input)).
// payload may be []byte (used as is) or anything JSON-encodable.
func buildJWS(tb testing.TB, h header, payload any, sign signFunc) string {
	tb.Helper()
	hb, err := json.Marshal(h)
	if err != nil {
		tb.Fatal(err)
	}
	pb, ok := payload.([]byte)
	if !ok {
		if pb, err = json.Marshal(payload); err != nil {
			tb.Fatal(err)
		}
	}
	input := b64(hb) + "." + b64(pb)
	return input + "." + b64(sign([]byte(input)))
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func b64dec(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func stdB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func ellipticP384() elliptic.Curve { return elliptic.P384() }

func es256(tb testing.TB, key *ecdsa.PrivateKey) signFunc {
	return func(in []byte) []byte {
		h := sha256.Sum256(in)
		r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
		if err != nil {
			tb.Fatal(err)
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
}

func hs256(secret []byte) signFunc {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(in)
		return m.Sum(nil)
	}
}

func rs256(tb testing.TB, key *rsa.PrivateKey) signFunc {
	return func(in []byte) []byte {
		h := sha256.Sum256(in)
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
		if err != nil {
			tb.Fatal(err)
		}
		return sig
	}
}

func eddsa(key ed25519.PrivateKey) signFunc {
	return func(in []byte) []byte { return ed25519.Sign(key, in) }
}

func noSignature(in []byte) []byte { return nil }

// publicJWK is the JWK of a P-256 public key, as a header member.
func publicJWK(tb testing.TB, pub *ecdsa.PublicKey) map[string]any {
	tb.Helper()
	x, y, err := p256Coordinates(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return map[string]any{"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)}
}

// wantRefused fails unless err is a *writ.Error of kind
// KindUnauthenticated with the given code whose message contains every one
// of msgs. Asserting the message makes each attack test pin the check that
// refuses it, so removing that check fails the test even where a later
// layer would also refuse.
func wantRefused(tb testing.TB, err error, code string, msgs ...string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("accepted; want refusal with code %s", code)
	}
	var e *writ.Error
	if !errors.As(err, &e) {
		tb.Fatalf("error %v (%T) is not a *writ.Error", err, err)
	}
	if e.Kind != writ.KindUnauthenticated || e.Code != code {
		tb.Fatalf("error %v: kind %v, code %q; want kind unauthenticated, code %q", err, e.Kind, e.Code, code)
	}
	for _, m := range msgs {
		if !strings.Contains(e.Message, m) {
			tb.Fatalf("error %q does not mention %q", e.Message, m)
		}
	}
}
