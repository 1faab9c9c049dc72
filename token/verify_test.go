package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ"
)

func TestMintVerifyRoundTrip(t *testing.T) {
	f := newFixture(t)
	dpopKey := mustP256(t)
	jkt, err := Thumbprint(&dpopKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	c := testClaims()
	c.NotBefore = testNow.Add(-5 * time.Second)
	c.JKT = jkt
	c.Act = &Actor{
		Subject: "spiffe://writ.example.com/agent/planner/run/01jnmr5s0fa7q7rb4k5z1c9x2a",
		Act:     &Actor{Subject: "spiffe://writ.example.com/agent/root/run/01jnmr5s0fa7q7rb4k5z1c9x29"},
	}
	raw, err := f.signer.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.ID) != 22 {
		t.Errorf("Mint set ID %q; want 22 base64url characters (128 bits)", c.ID)
	}
	got, err := f.v.Verify(raw, testAudience)
	if err != nil {
		t.Fatalf("Verify(minted token) = %v", err)
	}
	if diff := cmp.Diff(c, got); diff != "" {
		t.Errorf("Verify(Mint(c)) mismatch (-minted +verified):\n%s", diff)
	}

	// The wire form: the header is exactly alg, kid and typ, and aud is a
	// string, not an array.
	parts := strings.Split(raw, ".")
	var h map[string]any
	mustUnmarshalB64(t, parts[0], &h)
	if diff := cmp.Diff(map[string]any{"alg": "ES256", "kid": f.kid, "typ": "JWT"}, h); diff != "" {
		t.Errorf("header mismatch (-want +got):\n%s", diff)
	}
	var p map[string]any
	mustUnmarshalB64(t, parts[1], &p)
	want := map[string]any{
		"iss": testIssuer, "sub": testSubject, "aud": testAudience,
		"iat": float64(c.IssuedAt.Unix()), "nbf": float64(c.NotBefore.Unix()), "exp": float64(c.Expiry.Unix()),
		"jti": c.ID, "run": testRun, "agent": "refactor-bot", "profile": "refactor", "ticket": "jira:ENG-1",
		"cnf": map[string]any{"jkt": jkt},
		"act": map[string]any{"sub": c.Act.Subject, "act": map[string]any{"sub": c.Act.Act.Subject}},
	}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("payload mismatch (-want +got):\n%s", diff)
	}

	// A second mint gets a fresh jti; a given jti is kept.
	c2 := testClaims()
	if _, err := f.signer.Mint(c2); err != nil {
		t.Fatal(err)
	}
	if c2.ID == c.ID {
		t.Errorf("two mints got the same jti %q", c.ID)
	}
	c3 := testClaims()
	c3.ID = "fixed-jti"
	raw3, err := f.signer.Mint(c3)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := f.v.Verify(raw3, testAudience); err != nil || got.ID != "fixed-jti" {
		t.Errorf("Verify(token with jti fixed-jti) = %+v, %v", got, err)
	}
}

func mustUnmarshalB64(t *testing.T, s string, v any) {
	t.Helper()
	b, err := b64dec(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func TestMintTimesRoundDown(t *testing.T) {
	f := newFixture(t)
	c := testClaims()
	c.IssuedAt = testNow.Add(-900 * time.Millisecond)
	c.Expiry = testNow.Add(time.Minute + 999*time.Millisecond)
	raw, err := f.signer.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.v.Verify(raw, testAudience)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Expiry.Equal(testNow.Add(time.Minute)) || !got.IssuedAt.Equal(testNow.Add(-time.Second)) {
		t.Errorf("iat, exp = %v, %v; want both rounded down to whole seconds", got.IssuedAt, got.Expiry)
	}
}

func TestMintRefuses(t *testing.T) {
	f := newFixture(t)
	deep := &Actor{Subject: "spiffe://td/a"}
	for range maxActDepth {
		deep = &Actor{Subject: "spiffe://td/a", Act: deep}
	}
	tests := []struct {
		name   string
		change func(*Claims)
	}{
		{"no issuer", func(c *Claims) { c.Issuer = "" }},
		{"no audience", func(c *Claims) { c.Audience = "" }},
		{"no subject", func(c *Claims) { c.Subject = "" }},
		{"subject not a SPIFFE ID", func(c *Claims) { c.Subject = "https://writ.example.com/run/x" }},
		{"no run", func(c *Claims) { c.Run = "" }},
		{"no issuedAt", func(c *Claims) { c.IssuedAt = time.Time{} }},
		{"no expiry", func(c *Claims) { c.Expiry = time.Time{} }},
		{"expiry equals issuedAt", func(c *Claims) { c.Expiry = c.IssuedAt }},
		{"expiry before issuedAt", func(c *Claims) { c.Expiry = c.IssuedAt.Add(-time.Minute) }},
		{"expiry within the same second", func(c *Claims) {
			c.IssuedAt = testNow
			c.Expiry = testNow.Add(500 * time.Millisecond)
		}},
		{"notBefore at expiry", func(c *Claims) { c.NotBefore = c.Expiry }},
		{"jkt not a thumbprint", func(c *Claims) { c.JKT = "abc" }},
		{"act with empty subject", func(c *Claims) { c.Act = &Actor{Subject: "spiffe://td/a", Act: &Actor{}} }},
		{"act too deep", func(c *Claims) { c.Act = deep }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testClaims()
			tt.change(c)
			if raw, err := f.signer.Mint(c); err == nil {
				t.Fatalf("Mint = %.20s…, nil; want an error", raw)
			}
			if c.ID != "" {
				t.Errorf("a refused Mint set ID to %q", c.ID)
			}
		})
	}
	if _, err := f.signer.Mint(nil); err == nil {
		t.Error("Mint(nil) succeeded")
	}
}

func TestNewSignerRefuses(t *testing.T) {
	if _, err := NewSigner(nil); err == nil {
		t.Error("NewSigner(nil) succeeded")
	}
	p384, err := ecdsa.GenerateKey(ellipticP384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSigner(p384); err == nil {
		t.Error("NewSigner(P-384 key) succeeded; only P-256 is allowed")
	}
}

// TestVerifyRefuses is the attack table: each token is refused, by the
// check named in its message.
func TestVerifyRefuses(t *testing.T) {
	f := newFixture(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other := mustP256(t) // a key writ retired or never had
	pubDER, err := x509.MarshalPKIXPublicKey(&f.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pubPoint, err := f.key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	good := header{"alg": "ES256", "kid": f.kid, "typ": "JWT"}
	with := func(h header, kv ...any) header {
		out := header{}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
			} else {
				out[kv[i].(string)] = kv[i+1]
			}
		}
		return out
	}
	claims := func(kv ...any) map[string]any {
		m := claimsMap()
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	ours := es256(t, f.key)
	minted, err := f.signer.Mint(testClaims())
	if err != nil {
		t.Fatal(err)
	}
	deepAct := map[string]any{"sub": "spiffe://td/a"}
	for range maxActDepth {
		deepAct = map[string]any{"sub": "spiffe://td/a", "act": deepAct}
	}

	tests := []struct {
		name  string
		token string
		code  string
		msg   string
	}{
		// The algorithm.
		{"alg none", buildJWS(t, with(good, "alg", "none"), claimsMap(), noSignature), CodeInvalidToken, "algorithm is not ES256"},
		{"alg None", buildJWS(t, with(good, "alg", "None"), claimsMap(), noSignature), CodeInvalidToken, "algorithm is not ES256"},
		{"alg none with a real signature", buildJWS(t, with(good, "alg", "none"), claimsMap(), ours), CodeInvalidToken, "algorithm is not ES256"},
		{"HS256 keyed with the public key PEM", buildJWS(t, with(good, "alg", "HS256"), claimsMap(), hs256(pubPEM)), CodeInvalidToken, "algorithm is not ES256"},
		{"HS256 keyed with the public key point", buildJWS(t, with(good, "alg", "HS256"), claimsMap(), hs256(pubPoint)), CodeInvalidToken, "algorithm is not ES256"},
		{"HS256 keyed with the kid", buildJWS(t, with(good, "alg", "HS256"), claimsMap(), hs256([]byte(f.kid))), CodeInvalidToken, "algorithm is not ES256"},
		{"RS256", buildJWS(t, with(good, "alg", "RS256"), claimsMap(), rs256(t, rsaKey)), CodeInvalidToken, "algorithm is not ES256"},
		{"EdDSA", buildJWS(t, with(good, "alg", "EdDSA"), claimsMap(), eddsa(edKey)), CodeInvalidToken, "algorithm is not ES256"},
		{"ES384 label on an ES256 signature", buildJWS(t, with(good, "alg", "ES384"), claimsMap(), ours), CodeInvalidToken, "algorithm is not ES256"},
		{"no alg", buildJWS(t, with(good, "alg", nil), claimsMap(), ours), CodeInvalidToken, "algorithm is not ES256"},

		// The key.
		{"kid missing", buildJWS(t, with(good, "kid", nil), claimsMap(), ours), CodeInvalidToken, "no kid"},
		{"kid empty", buildJWS(t, with(good, "kid", ""), claimsMap(), ours), CodeInvalidToken, "no kid"},
		{"unknown kid, attacker's key", buildJWS(t, with(good, "kid", f.evilKid), claimsMap(), es256(t, f.evil)), CodeUnknownKID, "does not know"},
		{"unknown kid, a retired key", buildJWS(t, with(good, "kid", mustKeyID(t, other)), claimsMap(), es256(t, other)), CodeUnknownKID, "does not know"},
		{"embedded jwk of the attacker, attacker's kid", buildJWS(t, with(good, "kid", f.evilKid, "jwk", publicJWK(t, &f.evil.PublicKey)), claimsMap(), es256(t, f.evil)), CodeUnknownKID, "does not know"},
		{"embedded jwk of the attacker, writ's kid", buildJWS(t, with(good, "jwk", publicJWK(t, &f.evil.PublicKey)), claimsMap(), es256(t, f.evil)), CodeInvalidToken, "signature does not verify"},
		{"embedded jwk of the attacker, no kid", buildJWS(t, with(good, "kid", nil, "jwk", publicJWK(t, &f.evil.PublicKey)), claimsMap(), es256(t, f.evil)), CodeInvalidToken, "no kid"},
		{"x5c of the attacker, attacker's kid", buildJWS(t, with(good, "kid", f.evilKid, "x5c", []string{selfSigned(t, f.evil)}), claimsMap(), es256(t, f.evil)), CodeUnknownKID, "does not know"},
		{"x5c of the attacker, writ's kid", buildJWS(t, with(good, "x5c", []string{selfSigned(t, f.evil)}), claimsMap(), es256(t, f.evil)), CodeInvalidToken, "signature does not verify"},
		{"signature of another key with writ's kid", buildJWS(t, good, claimsMap(), es256(t, f.evil)), CodeInvalidToken, "signature does not verify"},
		{"payload edited after signing", editPayload(t, minted, func(m map[string]any) { m["run"] = "01jnmr5s0fa7q7rb4k5z1c9x2e" }), CodeInvalidToken, "signature does not verify"},
		{"payload edited: audience widened", editPayload(t, minted, func(m map[string]any) { m["aud"] = "https://vault.example.com" }), CodeInvalidToken, "signature does not verify"},
		{"payload edited: expiry extended", editPayload(t, minted, func(m map[string]any) { m["exp"] = testNow.Add(24 * time.Hour).Unix() }), CodeInvalidToken, "signature does not verify"},
		{"header edited: kid of another key", editHeader(t, minted, func(m map[string]any) { m["kid"] = f.evilKid }), CodeUnknownKID, "does not know"},
		{"signature truncated", truncateSig(t, minted), CodeInvalidToken, "signature does not verify"},
		{"non-canonical base64 of the same signature", nonCanonical(t, minted), CodeInvalidToken, "not a compact JWS"},
		{"signature removed", minted[:strings.LastIndexByte(minted, '.')+1], CodeInvalidToken, "signature does not verify"},

		// The header.
		{"typ dpop+jwt", buildJWS(t, with(good, "typ", "dpop+jwt"), claimsMap(), ours), CodeInvalidToken, "typ is not JWT"},
		{"typ at+jwt", buildJWS(t, with(good, "typ", "at+jwt"), claimsMap(), ours), CodeInvalidToken, "typ is not JWT"},
		{"typ not a string", buildJWS(t, with(good, "typ", 1), claimsMap(), ours), CodeInvalidToken, "typ is not JWT"},
		{"crit header", buildJWS(t, with(good, "crit", []string{"exp"}, "exp", 1), claimsMap(), ours), CodeInvalidToken, "crit header"},
		{"b64 header", buildJWS(t, with(good, "b64", true), claimsMap(), ours), CodeInvalidToken, "b64 header"},

		// The encoding.
		{"empty", "", CodeInvalidToken, "not a compact JWS"},
		{"two parts", "eyJhbGciOiJFUzI1NiJ9.e30", CodeInvalidToken, "not a compact JWS"},
		{"four parts", minted + ".e30", CodeInvalidToken, "not a compact JWS"},
		{"JSON serialization", flattenedJSON(t, minted), CodeInvalidToken, "not a compact JWS"},
		{"newline inside", minted[:10] + "\n" + minted[10:], CodeInvalidToken, "not a compact JWS"},
		{"padding", minted + "=", CodeInvalidToken, "not a compact JWS"},
		{"over 8 KiB", buildJWS(t, good, claims("pad", strings.Repeat("x", 8<<10)), ours), CodeInvalidToken, "over 8 KiB"},
		{"header not JSON", b64([]byte("not json")) + ".e30.AAAA", CodeInvalidToken, "malformed"},
		{"claims not JSON", buildJWS(t, good, []byte("not json"), ours), CodeInvalidToken, "claims are malformed"},
		{"claims an array", buildJWS(t, good, []any{claimsMap()}, ours), CodeInvalidToken, "claims are malformed"},

		// The claims, all signed by writ's key.
		{"issuer mismatch", buildJWS(t, good, claims("iss", "https://evil.example.com"), ours), CodeIssuerMismatch, "another issuer"},
		{"issuer missing", buildJWS(t, good, claims("iss", nil), ours), CodeIssuerMismatch, "another issuer"},
		{"issuer differs in case", buildJWS(t, good, claims("iss", "https://WRIT.example.com"), ours), CodeIssuerMismatch, "another issuer"},
		{"wrong audience", buildJWS(t, good, claims("aud", "https://vault.example.com"), ours), CodeAudienceMismatch, "another audience"},
		{"audience with a trailing slash", buildJWS(t, good, claims("aud", testAudience+"/"), ours), CodeAudienceMismatch, "another audience"},
		{"two audiences", buildJWS(t, good, claims("aud", []string{testAudience, "https://vault.example.com"}), ours), CodeAudienceMismatch, "names 2 audiences"},
		{"the audience twice", buildJWS(t, good, claims("aud", []string{testAudience, testAudience}), ours), CodeAudienceMismatch, "names 2 audiences"},
		{"empty audience list", buildJWS(t, good, claims("aud", []string{}), ours), CodeAudienceMismatch, "names 0 audiences"},
		{"audience missing", buildJWS(t, good, claims("aud", nil), ours), CodeInvalidToken, "no aud"},
		{"audience a number", buildJWS(t, good, claims("aud", 1), ours), CodeInvalidToken, "claims are malformed"},
		{"exp missing", buildJWS(t, good, claims("exp", nil), ours), CodeInvalidToken, "no exp"},
		{"exp a string", buildJWS(t, good, claims("exp", "9999999999"), ours), CodeInvalidToken, "claims are malformed"},
		{"exp negative", buildJWS(t, good, claims("exp", -1), ours), CodeInvalidToken, "claims are malformed"},
		{"exp past year 9999", buildJWS(t, good, claims("exp", 1e300), ours), CodeInvalidToken, "claims are malformed"},
		{"iat missing", buildJWS(t, good, claims("iat", nil), ours), CodeInvalidToken, "no iat"},
		{"iat in the future", buildJWS(t, good, claims("iat", testNow.Unix()+31), ours), CodeTokenNotYetValid, "iat"},
		{"nbf in the future", buildJWS(t, good, claims("nbf", testNow.Unix()+31), ours), CodeTokenNotYetValid, "nbf"},
		{"expired", buildJWS(t, good, claims("exp", testNow.Unix()-30), ours), CodeTokenExpired, "expired"},
		{"exp equals iat", buildJWS(t, good, claims("iat", testNow.Unix()-10, "exp", testNow.Unix()-10), ours), CodeInvalidToken, "expires before"},
		{"exp before iat, both valid now", buildJWS(t, good, claims("iat", testNow.Unix()+20, "exp", testNow.Unix()+10), ours), CodeInvalidToken, "expires before"},
		{"sub missing", buildJWS(t, good, claims("sub", nil), ours), CodeInvalidToken, "not a SPIFFE ID"},
		{"sub not a SPIFFE ID", buildJWS(t, good, claims("sub", "https://writ.example.com/agent/a/run/b"), ours), CodeInvalidToken, "not a SPIFFE ID"},
		{"sub a bare trust domain", buildJWS(t, good, claims("sub", "spiffe://writ.example.com"), ours), CodeInvalidToken, "not a SPIFFE ID"},
		{"sub with dot segments", buildJWS(t, good, claims("sub", "spiffe://writ.example.com/agent/../run/x"), ours), CodeInvalidToken, "not a SPIFFE ID"},
		{"run missing", buildJWS(t, good, claims("run", nil), ours), CodeInvalidToken, "no run claim"},
		{"jti missing", buildJWS(t, good, claims("jti", nil), ours), CodeInvalidToken, "no jti"},
		{"nbf at exp", buildJWS(t, good, claims("nbf", testNow.Unix()+20, "exp", testNow.Unix()+20), ours), CodeInvalidToken, "never valid"},
		{"cnf with a jkt that is not a thumbprint", buildJWS(t, good, claims("cnf", map[string]any{"jkt": "abc"}), ours), CodeInvalidToken, "cnf claim has no jkt"},
		{"cnf with an empty jkt", buildJWS(t, good, claims("cnf", map[string]any{"jkt": ""}), ours), CodeInvalidToken, "cnf claim has no jkt"},
		{"cnf without jkt", buildJWS(t, good, claims("cnf", map[string]any{"x5t#S256": "abc"}), ours), CodeInvalidToken, "cnf claim has no jkt"},
		{"act without sub", buildJWS(t, good, claims("act", map[string]any{"act": map[string]any{"sub": "spiffe://td/a"}}), ours), CodeInvalidToken, "act claim is malformed"},
		{"act too deep", buildJWS(t, good, claims("act", deepAct), ours), CodeInvalidToken, "act claim is malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.v.Verify(tt.token, testAudience)
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", got)
			}
			wantRefused(t, err, tt.code, tt.msg)
			if tt.token != "" && len(tt.token) > 20 && strings.Contains(err.Error(), tt.token[len(tt.token)-20:]) {
				t.Errorf("the error %q contains the token", err)
			}
		})
	}
}

// TestVerifyAccepts lists the forms a valid token may take besides Mint's.
func TestVerifyAccepts(t *testing.T) {
	f := newFixture(t)
	good := header{"alg": "ES256", "kid": f.kid, "typ": "JWT"}
	ours := es256(t, f.key)
	m := func(kv ...any) map[string]any {
		c := claimsMap()
		for i := 0; i < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	tests := []struct {
		name  string
		token string
	}{
		{"aud an array of the one audience", buildJWS(t, good, m("aud", []string{testAudience}), ours)},
		{"no typ", buildJWS(t, header{"alg": "ES256", "kid": f.kid}, claimsMap(), ours)},
		{"typ in lower case", buildJWS(t, header{"alg": "ES256", "kid": f.kid, "typ": "jwt"}, claimsMap(), ours)},
		{"fractional times", buildJWS(t, good, m("iat", float64(testNow.Unix())-0.5, "exp", float64(testNow.Unix())+60.25), ours)},
		// The header parameters that could name a key are ignored when the
		// token is writ's own.
		{"jku and x5u ignored", buildJWS(t, header{"alg": "ES256", "kid": f.kid, "jku": "https://127.0.0.1:1/jwks.json", "x5u": "https://127.0.0.1:1/cert.pem"}, claimsMap(), ours)},
		{"embedded jwk ignored", buildJWS(t, header{"alg": "ES256", "kid": f.kid, "jwk": publicJWK(t, &f.evil.PublicKey)}, claimsMap(), ours)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := f.v.Verify(tt.token, testAudience)
			if err != nil {
				t.Fatalf("Verify = %v", err)
			}
			if c.Audience != testAudience || c.Run != testRun {
				t.Errorf("claims %+v; want audience %s and run %s", c, testAudience, testRun)
			}
		})
	}
}

// TestVerifyNeverFetches points jku and x5u at a server that fails the test
// if it is ever contacted. It serves the attacker's key, as an attacker's
// server would.
func TestVerifyNeverFetches(t *testing.T) {
	f := newFixture(t)
	var hits atomic.Int32
	evilSet, err := JWKS([]PublicKey{{Key: &f.evil.PublicKey}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		t.Errorf("the verifier fetched %s", r.URL)
		w.Write(evilSet)
	}))
	defer srv.Close()
	hdr := func(kid string) header {
		return header{"alg": "ES256", "typ": "JWT", "kid": kid, "jku": srv.URL + "/jwks.json", "x5u": srv.URL + "/cert.pem"}
	}
	t.Run("unknown kid", func(t *testing.T) {
		_, err := f.v.Verify(buildJWS(t, hdr(f.evilKid), claimsMap(), es256(t, f.evil)), testAudience)
		wantRefused(t, err, CodeUnknownKID)
	})
	t.Run("writ's kid, attacker's signature", func(t *testing.T) {
		_, err := f.v.Verify(buildJWS(t, hdr(f.kid), claimsMap(), es256(t, f.evil)), testAudience)
		wantRefused(t, err, CodeInvalidToken, "signature does not verify")
	})
	t.Run("writ's kid and signature", func(t *testing.T) {
		if _, err := f.v.Verify(buildJWS(t, hdr(f.kid), claimsMap(), es256(t, f.key)), testAudience); err != nil {
			t.Errorf("Verify = %v; the jku and x5u headers should be ignored", err)
		}
	})
	if n := hits.Load(); n != 0 {
		t.Errorf("the key server was contacted %d times; want never", n)
	}
}

// TestVerifyClock checks exp, iat and nbf at the edges of the leeway, with an
// injected clock: one second inside passes, one second outside fails.
func TestVerifyClock(t *testing.T) {
	f := newFixture(t)
	const leeway = 30 * time.Second
	iat, exp := testNow.Add(-time.Minute), testNow.Add(4*time.Minute)
	tests := []struct {
		name   string
		leeway time.Duration
		now    time.Time
		nbf    time.Time
		iat    time.Time // default iat
		code   string    // "" means accepted
	}{
		{"exp: just before", leeway, exp.Add(-time.Second), time.Time{}, iat, ""},
		{"exp: at exp, inside the leeway", leeway, exp, time.Time{}, iat, ""},
		{"exp: 1s inside the leeway", leeway, exp.Add(leeway - time.Second), time.Time{}, iat, ""},
		{"exp: at the end of the leeway", leeway, exp.Add(leeway), time.Time{}, iat, CodeTokenExpired},
		{"exp: 1s outside the leeway", leeway, exp.Add(leeway + time.Second), time.Time{}, iat, CodeTokenExpired},
		{"exp: no leeway, 1s before", 0, exp.Add(-time.Second), time.Time{}, iat, ""},
		{"exp: no leeway, at exp", 0, exp, time.Time{}, iat, CodeTokenExpired},
		{"exp: leeway clamped to 60s", 10 * time.Minute, exp.Add(MaxLeeway + time.Second), time.Time{}, iat, CodeTokenExpired},
		{"exp: leeway clamped, 1s inside", 10 * time.Minute, exp.Add(MaxLeeway - time.Second), time.Time{}, iat, ""},
		{"exp: negative leeway is none", -time.Minute, exp.Add(-time.Second), time.Time{}, iat, ""},

		{"iat: at the edge of the leeway", leeway, iat.Add(-leeway), time.Time{}, iat, ""},
		{"iat: 1s outside the leeway", leeway, iat.Add(-leeway - time.Second), time.Time{}, iat, CodeTokenNotYetValid},
		{"iat: no leeway, at iat", 0, iat, time.Time{}, iat, ""},
		{"iat: no leeway, 1s early", 0, iat.Add(-time.Second), time.Time{}, iat, CodeTokenNotYetValid},
		{"iat: leeway clamped to 60s", time.Hour, iat.Add(-MaxLeeway - time.Second), time.Time{}, iat, CodeTokenNotYetValid},

		{"nbf: at the edge of the leeway", leeway, testNow, testNow.Add(leeway), testNow.Add(-time.Minute), ""},
		{"nbf: 1s outside the leeway", leeway, testNow, testNow.Add(leeway + time.Second), testNow.Add(-time.Minute), CodeTokenNotYetValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testClaims()
			c.IssuedAt, c.Expiry, c.NotBefore = tt.iat, exp, tt.nbf
			raw, err := f.signer.Mint(c)
			if err != nil {
				t.Fatal(err)
			}
			v := *f.v
			v.Leeway = tt.leeway
			v.Now = func() time.Time { return tt.now }
			_, err = v.Verify(raw, testAudience)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Verify at %v = %v; want accepted", tt.now.Sub(exp), err)
				}
				return
			}
			wantRefused(t, err, tt.code)
		})
	}
}

func TestVerifyDefaultClock(t *testing.T) {
	f := newFixture(t)
	c := testClaims()
	c.IssuedAt, c.Expiry = time.Now(), time.Now().Add(time.Minute)
	raw, err := f.signer.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	v := *f.v
	v.Now = nil
	if _, err := v.Verify(raw, testAudience); err != nil {
		t.Errorf("Verify with the real clock = %v", err)
	}
}

func TestVerifyMisconfigured(t *testing.T) {
	f := newFixture(t)
	raw, err := f.signer.Mint(testClaims())
	if err != nil {
		t.Fatal(err)
	}
	noKeys, noIssuer := *f.v, *f.v
	noKeys.Keys = nil
	noIssuer.Issuer = ""
	for name, call := range map[string]func() error{
		"no key lookup": func() error { _, err := noKeys.Verify(raw, testAudience); return err },
		"no issuer":     func() error { _, err := noIssuer.Verify(raw, testAudience); return err },
		"no audience":   func() error { _, err := f.v.Verify(raw, ""); return err },
		"nil verifier":  func() error { _, err := (*Verifier)(nil).Verify(raw, testAudience); return err },
	} {
		err := call()
		if err == nil {
			t.Errorf("%s: Verify accepted the token", name)
			continue
		}
		if writ.ErrorKind(err) != writ.KindInternal {
			t.Errorf("%s: Verify = %v of kind %v; want an internal error (the caller is misconfigured)", name, err, writ.ErrorKind(err))
		}
	}
}

// TestVerifyKeyLookupNil checks that a lookup that says "known" but returns
// no key is an unknown kid, not a crash.
func TestVerifyKeyLookupNil(t *testing.T) {
	f := newFixture(t)
	raw, err := f.signer.Mint(testClaims())
	if err != nil {
		t.Fatal(err)
	}
	v := *f.v
	v.Keys = func(string) (*ecdsa.PublicKey, bool) { return nil, true }
	_, err = v.Verify(raw, testAudience)
	wantRefused(t, err, CodeUnknownKID)
}

// TestVerifyRotation: a token keeps verifying while its key is published
// beside a new one.
func TestVerifyRotation(t *testing.T) {
	old, cur := newFixture(t), mustP256(t)
	newSigner, err := NewSigner(cur)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]*ecdsa.PublicKey{old.kid: &old.key.PublicKey, newSigner.KeyID(): &cur.PublicKey}
	v := *old.v
	v.Keys = func(kid string) (*ecdsa.PublicKey, bool) { k, ok := keys[kid]; return k, ok }
	for _, s := range []*Signer{old.signer, newSigner} {
		raw, err := s.Mint(testClaims())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(raw, testAudience); err != nil {
			t.Errorf("token of key %s: %v", s.KeyID(), err)
		}
	}
	delete(keys, old.kid)
	raw, err := old.signer.Mint(testClaims())
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(raw, testAudience)
	wantRefused(t, err, CodeUnknownKID)
}

func mustKeyID(t *testing.T, k *ecdsa.PrivateKey) string {
	t.Helper()
	kid, err := KeyID(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return kid
}

// editPayload re-encodes the claims of a signed token after change, keeping
// its header and signature.
func editPayload(t *testing.T, raw string, change func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	var m map[string]any
	mustUnmarshalB64(t, parts[1], &m)
	change(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return parts[0] + "." + b64(b) + "." + parts[2]
}

// editHeader re-encodes the header of a signed token after change.
func editHeader(t *testing.T, raw string, change func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	var m map[string]any
	mustUnmarshalB64(t, parts[0], &m)
	change(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b64(b) + "." + parts[1] + "." + parts[2]
}

// truncateSig drops the last 3 bytes of the signature of a token.
func truncateSig(t *testing.T, raw string) string {
	t.Helper()
	i := strings.LastIndexByte(raw, '.')
	sig, err := b64dec(raw[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	return raw[:i+1] + b64(sig[:len(sig)-3])
}

// nonCanonical sets an unused bit of the last character of a token, which
// a lenient decoder maps to the same bytes. An ES256 signature is 64 bytes,
// so its encoding's last character carries 4 unused bits.
func nonCanonical(t *testing.T, raw string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, raw[len(raw)-1])
	out := raw[:len(raw)-1] + string(alphabet[last|1])
	a, err1 := b64dec(raw[strings.LastIndexByte(raw, '.')+1:])
	b, err2 := b64dec(out[strings.LastIndexByte(out, '.')+1:])
	if err1 != nil || err2 != nil || string(a) != string(b) {
		t.Fatalf("the non-canonical form does not decode to the same signature: %v, %v", err1, err2)
	}
	return out
}

// flattenedJSON re-serializes a compact JWS in the flattened JSON
// serialization, with the same (valid) signature.
func flattenedJSON(t *testing.T, raw string) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	b, err := json.Marshal(map[string]string{"protected": parts[0], "payload": parts[1], "signature": parts[2]})
	if err != nil {
		t.Fatal(err)
	}
	// go-jose itself would accept it: the test is about writ refusing it.
	if _, err := jose.ParseSignedJSON(string(b), es256Only); err != nil {
		t.Fatalf("the flattened JSON form does not parse: %v", err)
	}
	return string(b)
}

// selfSigned returns a base64 DER self-signed certificate for key, as an
// x5c entry.
func selfSigned(t *testing.T, key *ecdsa.PrivateKey) string {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "writ.example.com"},
		NotBefore:    testNow.Add(-time.Hour),
		NotAfter:     testNow.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return stdB64(der)
}
