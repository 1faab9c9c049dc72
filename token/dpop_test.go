package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ"
)

// dpopFixture is a client's DPoP key, a token bound to it, and the check
// writ's endpoint would make for one request.
type dpopFixture struct {
	*fixture
	client *ecdsa.PrivateKey
	jkt    string
	token  string
}

func newDPoPFixture(t testing.TB) *dpopFixture {
	t.Helper()
	f := &dpopFixture{fixture: newFixture(t)}
	var err error
	if f.client, err = NewDPoPKey(); err != nil {
		t.Fatal(err)
	}
	if f.jkt, err = Thumbprint(&f.client.PublicKey); err != nil {
		t.Fatal(err)
	}
	c := testClaims()
	c.JKT = f.jkt
	if f.token, err = f.signer.Mint(c); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *dpopFixture) check() ProofCheck {
	return ProofCheck{Method: "POST", URL: testURL, AccessToken: f.token, JKT: f.jkt, Now: testNow, Leeway: 5 * time.Second}
}

// proofClaims are the claims of a valid proof for check(), to edit and
// sign by hand.
func (f *dpopFixture) proofClaims() map[string]any {
	return map[string]any{"jti": "cHJvb2YtanRpLTAwMDAwMDA", "htm": "POST", "htu": testURL, "iat": testNow.Unix(), "ath": accessTokenHash(f.token)}
}

func (f *dpopFixture) proofHeader(t testing.TB) header {
	return header{"typ": "dpop+jwt", "alg": "ES256", "jwk": publicJWK(t, &f.client.PublicKey)}
}

func TestProofRoundTrip(t *testing.T) {
	f := newDPoPFixture(t)
	proof, err := Proof(f.client, "POST", testURL, f.token, testNow)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyProof(proof, f.check())
	if err != nil {
		t.Fatalf("VerifyProof = %v", err)
	}
	if got.JKT != f.jkt || got.JTI == "" || !got.IssuedAt.Equal(testNow) {
		t.Errorf("VerifyProof = %+v; want jkt %s, a jti and iat %v", got, f.jkt, testNow)
	}

	// The wire form (RFC 9449 §4.2).
	parts := strings.Split(proof, ".")
	var h map[string]any
	mustUnmarshalB64(t, parts[0], &h)
	jwk := publicJWK(t, &f.client.PublicKey)
	if diff := cmp.Diff(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}, h); diff != "" {
		t.Errorf("proof header mismatch (-want +got):\n%s", diff)
	}
	var p map[string]any
	mustUnmarshalB64(t, parts[1], &p)
	want := map[string]any{"jti": got.JTI, "htm": "POST", "htu": testURL, "iat": float64(testNow.Unix()), "ath": accessTokenHash(f.token)}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("proof claims mismatch (-want +got):\n%s", diff)
	}
	if len(got.JTI) != 22 {
		t.Errorf("jti %q; want 128 random bits in base64url", got.JTI)
	}

	// Without an access token there is no ath.
	proof, err = Proof(f.client, "POST", "https://writ.example.com/v1/runs", "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	p = nil
	mustUnmarshalB64(t, strings.Split(proof, ".")[1], &p)
	if _, ok := p["ath"]; ok {
		t.Errorf("a proof without an access token has ath %v", p["ath"])
	}
	if _, err := VerifyProof(proof, ProofCheck{Method: "POST", URL: "https://writ.example.com/v1/runs", Now: testNow}); err != nil {
		t.Errorf("VerifyProof(proof without a token) = %v", err)
	}
}

// TestVerifyProofRefuses is the DPoP attack table.
func TestVerifyProofRefuses(t *testing.T) {
	f := newDPoPFixture(t)
	client := es256(t, f.client)
	proof := func(method, url, token string, now time.Time) string {
		p, err := Proof(f.client, method, url, token, now)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	claims := func(kv ...any) map[string]any {
		m := f.proofClaims()
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	hdr := func(kv ...any) header {
		h := f.proofHeader(t)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(h, kv[i].(string))
			} else {
				h[kv[i].(string)] = kv[i+1]
			}
		}
		return h
	}
	privateJWK := publicJWK(t, &f.client.PublicKey)
	d, err := f.client.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	privateJWK["d"] = b64(d)
	otherToken, err := f.signer.Mint(testClaims())
	if err != nil {
		t.Fatal(err)
	}
	// The attacker stole the bound token and proves with their own key.
	stolen := func() string {
		p, err := Proof(f.evil, "POST", testURL, f.token, testNow)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}()
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(ellipticP384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384Point, err := p384.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	const leeway = 5 * time.Second

	tests := []struct {
		name  string
		proof string
		msg   string
	}{
		{"wrong htm", proof("GET", testURL, f.token, testNow), "htm is not the request method POST"},
		{"htm in another case", proof("post", testURL, f.token, testNow), "htm is not the request method POST"},
		{"htu of another path", proof("POST", "https://writ.example.com/v1/runs/"+testRun+"/token", f.token, testNow), "htu is not this request's URL"},
		{"htu of a path prefix", proof("POST", "https://writ.example.com/v1/runs/"+testRun, f.token, testNow), "htu is not this request's URL"},
		{"htu of another host", proof("POST", "https://evil.example.com/v1/runs/"+testRun+"/actions", f.token, testNow), "htu is not this request's URL"},
		{"htu of another scheme", proof("POST", "http://writ.example.com/v1/runs/"+testRun+"/actions", f.token, testNow), "htu is not this request's URL"},
		{"htu of another port", proof("POST", "https://writ.example.com:8443/v1/runs/"+testRun+"/actions", f.token, testNow), "htu is not this request's URL"},
		{"htu with a trailing slash", proof("POST", testURL+"/", f.token, testNow), "htu is not this request's URL"},
		{"htu with dot segments", buildJWS(t, hdr(), claims("htu", "https://writ.example.com/v1/runs/x/../"+testRun+"/actions"), client), "htu is not this request's URL"},
		{"htu relative", buildJWS(t, hdr(), claims("htu", "/v1/runs/"+testRun+"/actions"), client), "htu is not this request's URL"},
		{"htu missing", buildJWS(t, hdr(), claims("htu", nil), client), "htu is not this request's URL"},
		{"iat 1s too old", proof("POST", testURL, f.token, testNow.Add(-MaxProofAge-leeway-time.Second)), "older than"},
		{"iat an hour old", proof("POST", testURL, f.token, testNow.Add(-time.Hour)), "older than"},
		{"iat 1s too far in the future", proof("POST", testURL, f.token, testNow.Add(leeway+time.Second)), "in the future"},
		{"iat missing", buildJWS(t, hdr(), claims("iat", nil), client), "no iat"},
		{"iat a string", buildJWS(t, hdr(), claims("iat", "1772366400"), client), "claims are malformed"},
		{"ath of another token", proof("POST", testURL, otherToken, testNow), "ath is not the hash of this request's access token"},
		{"ath missing", proof("POST", testURL, "", testNow), "no ath"},
		{"ath of the token's raw bytes, not its hash", buildJWS(t, hdr(), claims("ath", f.token), client), "ath is not the hash"},
		{"jkt mismatch: stolen token, attacker's key", stolen, "signed by another key than the one the token is bound to"},
		{"private jwk", buildJWS(t, hdr("jwk", privateJWK), f.proofClaims(), client), "private key member"},
		{"private jwk, symmetric", buildJWS(t, hdr("jwk", map[string]any{"kty": "oct", "k": "c2VjcmV0"}), f.proofClaims(), client), "private key member"},
		{"token used as a proof", f.token, "typ is not dpop+jwt"},
		{"typ JWT", buildJWS(t, hdr("typ", "JWT"), f.proofClaims(), client), "typ is not dpop+jwt"},
		{"typ missing", buildJWS(t, hdr("typ", nil), f.proofClaims(), client), "typ is not dpop+jwt"},
		{"no jwk", buildJWS(t, hdr("jwk", nil, "kid", f.jkt), f.proofClaims(), client), "no jwk header"},
		{"jwk of another key than the signer's", buildJWS(t, hdr("jwk", publicJWK(t, &f.evil.PublicKey)), f.proofClaims(), client), "signature does not verify"},
		{"payload edited after signing", editPayload(t, proof("POST", testURL, f.token, testNow), func(m map[string]any) { m["htu"] = "https://writ.example.com/v1/admin" }), "signature does not verify"},
		{"jwk of a P-384 key", buildJWS(t, hdr("jwk", map[string]any{"kty": "EC", "crv": "P-384", "x": b64(p384Point[1:49]), "y": b64(p384Point[49:])}), f.proofClaims(), client), "not an EC P-256 public key"},
		{"alg none", buildJWS(t, hdr("alg", "none"), f.proofClaims(), noSignature), "alg is not ES256"},
		{"alg HS256", buildJWS(t, hdr("alg", "HS256"), f.proofClaims(), hs256([]byte(f.jkt))), "alg is not ES256"},
		{"alg EdDSA", buildJWS(t, hdr("alg", "EdDSA", "jwk", map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(edKey.Public().(ed25519.PublicKey))}), f.proofClaims(), eddsa(edKey)), "alg is not ES256"},
		{"jti missing", buildJWS(t, hdr(), claims("jti", nil), client), "jti"},
		{"jti too long", buildJWS(t, hdr(), claims("jti", strings.Repeat("a", maxProofJTILen+1)), client), "jti"},
		{"crit header", buildJWS(t, hdr("crit", []string{"x"}, "x", 1), f.proofClaims(), client), "crit header"},
		{"empty", "", "not a compact JWS"},
		{"JSON serialization", flattenedJSON(t, proof("POST", testURL, f.token, testNow)), "not a compact JWS"},
		{"over 8 KiB", buildJWS(t, hdr(), claims("pad", strings.Repeat("x", 8<<10)), client), "over 8 KiB"},
		{"header not JSON", b64([]byte("{")) + ".e30.AAAA", "header is not a JSON object"},
		{"claims not JSON", buildJWS(t, hdr(), []byte("["), client), "claims are malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VerifyProof(tt.proof, f.check())
			if err == nil {
				t.Fatalf("VerifyProof accepted the proof: %+v", got)
			}
			wantRefused(t, err, CodeInvalidDPoPProof, tt.msg)
		})
	}
}

// TestVerifyProofAccepts lists the variations a proof may have.
func TestVerifyProofAccepts(t *testing.T) {
	f := newDPoPFixture(t)
	const leeway = 5 * time.Second
	tests := []struct {
		name   string
		url    string    // the proof's htu
		iat    time.Time // the proof's iat
		change func(*ProofCheck)
	}{
		{"the same URL", testURL, testNow, nil},
		{"the request has a query", testURL, testNow, func(c *ProofCheck) { c.URL += "?wait=1#frag" }},
		{"the proof has a query and a fragment", testURL + "?wait=1#frag", testNow, nil},
		{"host and scheme in upper case", "HTTPS://WRIT.Example.COM/v1/runs/" + testRun + "/actions", testNow, nil},
		{"the default port", "https://writ.example.com:443/v1/runs/" + testRun + "/actions", testNow, nil},
		{"percent-encoded unreserved characters", "https://writ.example.com/v1/%72uns/" + testRun + "/actions", testNow, nil},
		{"iat at the oldest edge", testURL, testNow.Add(-MaxProofAge - leeway), nil},
		{"iat at the newest edge", testURL, testNow.Add(leeway), nil},
		{"leeway clamped, iat 60s ahead", testURL, testNow.Add(MaxLeeway), func(c *ProofCheck) { c.Leeway = time.Hour }},
		{"no JKT to check", testURL, testNow, func(c *ProofCheck) { c.JKT = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := f.check()
			c.Leeway = leeway
			if tt.change != nil {
				tt.change(&c)
			}
			// Built by hand, so the htu is sent as written, not as Proof
			// would normalize it.
			claims := f.proofClaims()
			claims["htu"], claims["iat"] = tt.url, tt.iat.Unix()
			p := buildJWS(t, f.proofHeader(t), claims, es256(t, f.client))
			got, err := VerifyProof(p, c)
			if err != nil {
				t.Fatalf("VerifyProof = %v", err)
			}
			if got.JKT != f.jkt {
				t.Errorf("JKT = %s; want %s", got.JKT, f.jkt)
			}
		})
	}
}

// TestVerifyProofLeewayClamp: a leeway over 60s is clamped, so a proof 61s in
// the future is refused however large the configured leeway.
func TestVerifyProofLeewayClamp(t *testing.T) {
	f := newDPoPFixture(t)
	c := f.check()
	c.Leeway = time.Hour
	for _, iat := range []time.Time{testNow.Add(MaxLeeway + time.Second), testNow.Add(-MaxProofAge - MaxLeeway - time.Second)} {
		p, err := Proof(f.client, "POST", testURL, f.token, iat)
		if err != nil {
			t.Fatal(err)
		}
		_, err = VerifyProof(p, c)
		wantRefused(t, err, CodeInvalidDPoPProof, "iat")
	}
}

func TestVerifyProofMisconfigured(t *testing.T) {
	f := newDPoPFixture(t)
	p, err := Proof(f.client, "POST", testURL, f.token, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*ProofCheck){
		"no method":       func(c *ProofCheck) { c.Method = "" },
		"no URL":          func(c *ProofCheck) { c.URL = "" },
		"a relative URL":  func(c *ProofCheck) { c.URL = "/v1/runs" },
		"no clock":        func(c *ProofCheck) { c.Now = time.Time{} },
		"a non-http URL":  func(c *ProofCheck) { c.URL = "ftp://writ.example.com/x" },
		"a URL with user": func(c *ProofCheck) { c.URL = "https://u:p@writ.example.com/x" },
	} {
		c := f.check()
		change(&c)
		_, err := VerifyProof(p, c)
		if err == nil || writ.ErrorKind(err) != writ.KindInternal {
			t.Errorf("%s: VerifyProof = %v; want an internal error", name, err)
		}
	}
}

func TestProofRefuses(t *testing.T) {
	k, err := NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(ellipticP384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() (string, error){
		"nil key":        func() (string, error) { return Proof(nil, "GET", testURL, "", testNow) },
		"P-384 key":      func() (string, error) { return Proof(p384, "GET", testURL, "", testNow) },
		"no method":      func() (string, error) { return Proof(k, "", testURL, "", testNow) },
		"relative URL":   func() (string, error) { return Proof(k, "GET", "/v1/runs", "", testNow) },
		"zero time":      func() (string, error) { return Proof(k, "GET", testURL, "", time.Time{}) },
		"URL with space": func() (string, error) { return Proof(k, "GET", "https://a b/", "", testNow) },
	} {
		if p, err := call(); err == nil {
			t.Errorf("%s: Proof = %.20s…, nil; want an error", name, p)
		}
	}
}

func TestNormalizeHTU(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://writ.example.com/v1/runs", "https://writ.example.com/v1/runs"},
		{"HTTPS://Writ.Example.COM/v1/Runs", "https://writ.example.com/v1/Runs"},
		{"https://writ.example.com:443/x", "https://writ.example.com/x"},
		{"http://writ.example.com:80/x", "http://writ.example.com/x"},
		{"https://writ.example.com:80/x", "https://writ.example.com:80/x"},
		{"http://writ.example.com:443/x", "http://writ.example.com:443/x"},
		{"https://writ.example.com:/x", "https://writ.example.com/x"},
		{"https://writ.example.com", "https://writ.example.com/"},
		{"https://writ.example.com?x=1", "https://writ.example.com/"},
		{"https://writ.example.com/x?y=1#z", "https://writ.example.com/x"},
		{"https://writ.example.com/%7euser/%2f/%41", "https://writ.example.com/~user/%2F/A"},
		{"https://[::1]:8443/x", "https://[::1]:8443/x"},
		{"https://[::1]:443/x", "https://[::1]/x"},
	}
	for _, tt := range tests {
		got, err := normalizeHTU(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("normalizeHTU(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "/x", "writ.example.com/x", "ftp://a/x", "https://", "https://u@a/x", "mailto:a@b", "https://a/%zz"} {
		if got, err := normalizeHTU(in); err == nil {
			t.Errorf("normalizeHTU(%q) = %q, nil; want an error", in, got)
		}
	}
}
