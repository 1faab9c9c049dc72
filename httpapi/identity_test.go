package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/token"
)

// downstream is the one downstream audience the identity fixture
// configures (identity.audiences).
const downstream = "https://vault.example.org"

// newIDFixture is the fixture with its API replaced by one that also
// issues tokens for the downstream audience.
func newIDFixture(t *testing.T) *fixture {
	t.Helper()
	return newIDFixtureWith(t, nil)
}

// newIDFixtureWith is newIDFixture with the API's store wrapped by wrap.
func newIDFixtureWith(t *testing.T, wrap func(testStore) testStore) *fixture {
	t.Helper()
	f := newFixture(t)
	var store testStore = f.store
	if wrap != nil {
		store = wrap(store)
	}
	api, svc := f.build(store, f.humans, []string{downstream}, nil)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	svc.SetPublicURL(srv.URL)
	f.api, f.svc, f.srv, f.url = api, svc, srv, srv.URL
	return f
}

// startedRun is the answer to POST /v1/runs: the run and its first token.
type startedRun struct {
	runView
	Token          string    `json:"token"`
	TokenType      string    `json:"tokenType"`
	TokenExpiresAt time.Time `json:"tokenExpiresAt"`
}

// mintedToken is the answer to POST /v1/runs/{id}/token.
type mintedToken struct {
	Token     string    `json:"token"`
	TokenType string    `json:"tokenType"`
	Audience  string    `json:"audience"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// send sends a request with exactly the headers in h (and Host when host
// is not empty) and reads the answer whole.
func (f *fixture) send(method, path string, h http.Header, body []byte, host string) response {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, f.url+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range h {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// proofFor makes a DPoP proof with key for method and the public URL of
// path, bound to tok when tok is not empty, at the fixture's clock.
func (f *fixture) proofFor(key *ecdsa.PrivateKey, method, path, tok string) string {
	f.t.Helper()
	p, err := token.Proof(key, method, f.url+path, tok, f.clock.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

// dpop sends tok with the DPoP scheme and the given proof.
func (f *fixture) dpop(method, path, tok, proof string, body []byte) response {
	f.t.Helper()
	h := http.Header{"Authorization": {"DPoP " + tok}}
	if proof != "" {
		h["Dpop"] = []string{proof}
	}
	return f.send(method, path, h, body, "")
}

// dpopFresh sends tok with the DPoP scheme and a fresh proof made by key.
func (f *fixture) dpopFresh(method, path, tok string, key *ecdsa.PrivateKey, body []byte) response {
	f.t.Helper()
	return f.dpop(method, path, tok, f.proofFor(key, method, path, tok), body)
}

// startWith posts body to /v1/runs, with a DPoP proof of key when key is
// not nil.
func (f *fixture) startWith(body []byte, key *ecdsa.PrivateKey) response {
	f.t.Helper()
	h := http.Header{}
	if key != nil {
		h.Set("DPoP", f.proofFor(key, "POST", "/v1/runs", ""))
	}
	return f.send("POST", "/v1/runs", h, body, "")
}

// mustStartRun starts a run of a trigger signed by alice (changed by mod)
// and returns it with its first token, bound to key when key is not nil.
func (f *fixture) mustStartRun(key *ecdsa.PrivateKey, mod func(*writ.Trigger)) startedRun {
	f.t.Helper()
	return decodeStarted(f.t, f.startWith(f.signed("alice", mod), key))
}

func decodeStarted(t *testing.T, r response) startedRun {
	t.Helper()
	if r.status != http.StatusCreated {
		t.Fatalf("POST /v1/runs = %d %s; want 201", r.status, r.body)
	}
	var s startedRun
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	if s.Token == "" {
		t.Fatalf("POST /v1/runs gave no token: %s", r.body)
	}
	return s
}

func decodeMinted(t *testing.T, r response) mintedToken {
	t.Helper()
	if r.status != http.StatusCreated {
		t.Fatalf("POST …/token = %d %s; want 201", r.status, r.body)
	}
	var m mintedToken
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return m
}

// runPath is GET /v1/runs/{id}, the route a run may read itself on.
func runPath(id writ.RunID) string { return "/v1/runs/" + string(id) }

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func thumbprint(t *testing.T, k *ecdsa.PrivateKey) string {
	t.Helper()
	jkt, err := token.Thumbprint(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return jkt
}

// jwtPart decodes part i (0 header, 1 claims) of a compact JWT.
func jwtPart(t *testing.T, raw string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// numClaim returns a NumericDate claim as a time.
func numClaim(t *testing.T, c map[string]any, name string) time.Time {
	t.Helper()
	n, ok := c[name].(json.Number)
	if !ok {
		t.Fatalf("claim %s = %v; want a number", name, c[name])
	}
	s, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return time.Unix(s, 0).UTC()
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func b64JSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64(b)
}

// forge builds a compact JWS by hand from header and claims, signed by
// sign over the signing input; no JOSE library gets a chance to refuse.
func forge(t *testing.T, header, claims map[string]any, sign func(input []byte) []byte) string {
	t.Helper()
	input := b64JSON(t, header) + "." + b64JSON(t, claims)
	return input + "." + b64(sign([]byte(input)))
}

// es256 signs as RFC 7518 §3.4 says: r ‖ s, 32 bytes each.
func es256(key *ecdsa.PrivateKey) func([]byte) []byte {
	return func(input []byte) []byte {
		sum := sha256.Sum256(input)
		r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
		if err != nil {
			panic(err)
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
}

func hs256(secret []byte) func([]byte) []byte {
	return func(input []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(input)
		return m.Sum(nil)
	}
}

// jwkOf is the public JWK of pub, as a JWKS publishes it.
func jwkOf(t *testing.T, pub *ecdsa.PublicKey) map[string]any {
	t.Helper()
	p, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	kid, err := token.KeyID(pub)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"kty": "EC", "crv": "P-256", "x": b64(p[1:33]), "y": b64(p[33:]), "kid": kid, "alg": "ES256", "use": "sig"}
}

// TestRunTokenAttacks sends forged and misused tokens to GET
// /v1/runs/{id}, the route a run may read itself on: every one is refused
// with 401 (403 for another run's valid token) and nothing is fetched from
// the URLs the tokens name. The control token of each forgery is accepted.
func TestRunTokenAttacks(t *testing.T) {
	f := newIDFixture(t)
	a := f.mustStartRun(nil, nil)
	b := f.mustStartRun(nil, nil)
	holderKey := newKey(t)
	c := f.mustStartRun(holderKey, nil)

	// The attacker's server: it serves a JWKS with the attacker's key (so
	// a verifier that followed jku/x5u would accept the forgery) and fails
	// the test if anyone asks.
	attacker := newKey(t)
	attackerKid, err := token.KeyID(&attacker.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var fetched atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		t.Errorf("writ fetched %s from the URL a token named", r.URL)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{jwkOf(t, &attacker.PublicKey)}})
	}))
	t.Cleanup(evil.Close)

	hdr := jwtPart(t, a.Token, 0)
	claims := jwtPart(t, a.Token, 1)
	kid, _ := hdr["kid"].(string)
	if kid == "" || hdr["alg"] != "ES256" || hdr["typ"] != "JWT" {
		t.Fatalf("header of a writ token: %v", hdr)
	}
	with := func(m map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
			} else {
				out[kv[i].(string)] = kv[i+1]
			}
		}
		return out
	}

	// The identity public key in the forms an HS256 confusion attack would
	// use as the HMAC secret.
	pub := f.ids.Published()[0].Key
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	point, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwkJSON, err := json.Marshal(jwkOf(t, pub))
	if err != nil {
		t.Fatal(err)
	}
	jwks := doURL(t, f.url, "GET", "/.well-known/jwks.json", "", nil)

	// The attacker edits the payload of a's real token: a longer life, or
	// the identity of run b.
	parts := strings.Split(a.Token, ".")
	edited := func(kv ...any) string {
		return b64JSON(t, hdr) + "." + b64JSON(t, with(claims, kv...)) + "." + parts[2]
	}
	// Tokens signed by writ's own key, but wrong in what they say.
	signer := f.ids.Current()
	writSigned := func(mod func(*token.Claims)) string {
		now := f.clock.Now()
		c := &token.Claims{Issuer: f.url, Subject: a.SPIFFEID, Audience: f.url + "/v1", IssuedAt: now, Expiry: now.Add(5 * time.Minute),
			Run: string(a.ID), Agent: a.Agent, Profile: a.Profile}
		mod(c)
		raw, err := signer.Mint(c)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	// A downstream token of c, minted by c's holder.
	down := decodeMinted(t, f.dpopFresh("POST", runPath(c.ID)+"/token", c.Token, holderKey,
		[]byte(`{"audience": "`+downstream+`"}`)))

	cases := []struct {
		name   string
		run    writ.RunID // whose path
		tok    string
		status int
		code   string
	}{
		{"control: a's own token", a.ID, a.Token, 200, ""},
		{"control: writ-signed token", a.ID, writSigned(func(*token.Claims) {}), 200, ""},
		{"alg none", a.ID, forge(t, with(hdr, "alg", "none"), claims, func([]byte) []byte { return nil }), 401, "invalid_token"},
		{"alg None", a.ID, forge(t, with(hdr, "alg", "None"), claims, func([]byte) []byte { return nil }), 401, "invalid_token"},
		{"alg none with the original signature", a.ID, b64JSON(t, with(hdr, "alg", "none")) + "." + parts[1] + "." + parts[2], 401, "invalid_token"},
		{"HS256 keyed with the public key PEM", a.ID, forge(t, with(hdr, "alg", "HS256"), claims, hs256(pemBytes)), 401, "invalid_token"},
		{"HS256 keyed with the public key DER", a.ID, forge(t, with(hdr, "alg", "HS256"), claims, hs256(der)), 401, "invalid_token"},
		{"HS256 keyed with the public point", a.ID, forge(t, with(hdr, "alg", "HS256"), claims, hs256(point)), 401, "invalid_token"},
		{"HS256 keyed with the public JWK", a.ID, forge(t, with(hdr, "alg", "HS256"), claims, hs256(jwkJSON)), 401, "invalid_token"},
		{"HS256 keyed with the JWKS document", a.ID, forge(t, with(hdr, "alg", "HS256"), claims, hs256(jwks.body)), 401, "invalid_token"},
		{"unknown kid", a.ID, forge(t, with(hdr, "kid", attackerKid), claims, es256(attacker)), 401, "unknown_kid"},
		{"writ's kid, attacker's key", a.ID, forge(t, hdr, claims, es256(attacker)), 401, "invalid_token"},
		{"no kid, attacker's key", a.ID, forge(t, with(hdr, "kid", nil), claims, es256(attacker)), 401, "invalid_token"},
		{"jku to the attacker's JWKS", a.ID, forge(t, with(hdr, "kid", attackerKid, "jku", evil.URL+"/jwks.json"), claims, es256(attacker)), 401, "unknown_kid"},
		{"jku with writ's kid", a.ID, forge(t, with(hdr, "jku", evil.URL+"/jwks.json"), claims, es256(attacker)), 401, "invalid_token"},
		{"x5u to the attacker", a.ID, forge(t, with(hdr, "kid", attackerKid, "x5u", evil.URL+"/cert.pem"), claims, es256(attacker)), 401, "unknown_kid"},
		{"embedded jwk of the attacker", a.ID, forge(t, with(hdr, "kid", attackerKid, "jwk", jwkOf(t, &attacker.PublicKey)), claims, es256(attacker)), 401, "unknown_kid"},
		{"embedded jwk with writ's kid", a.ID, forge(t, with(hdr, "jwk", jwkOf(t, &attacker.PublicKey)), claims, es256(attacker)), 401, "invalid_token"},
		{"payload edited: exp a day later", a.ID, edited("exp", numClaim(t, claims, "exp").Add(24*time.Hour).Unix()), 401, "invalid_token"},
		{"payload edited: run b", b.ID, edited("run", string(b.ID), "sub", b.SPIFFEID), 401, "invalid_token"},
		{"payload edited: audience", a.ID, edited("aud", downstream), 401, "invalid_token"},
		{"signature of another token", a.ID, parts[0] + "." + parts[1] + "." + strings.Split(b.Token, ".")[2], 401, "invalid_token"},
		{"downstream token on the API", c.ID, down.Token, 401, "audience_mismatch"},
		{"writ-signed, another issuer", a.ID, writSigned(func(c *token.Claims) { c.Issuer = "https://evil.example" }), 401, "issuer_mismatch"},
		{"writ-signed, another audience", a.ID, writSigned(func(c *token.Claims) { c.Audience = "https://evil.example/v1" }), 401, "audience_mismatch"},
		{"writ-signed, an unknown run", a.ID, writSigned(func(c *token.Claims) { c.Run = "01JBCDEFGHJKMNPQRSTVWXYZ12" }), 401, "invalid_token"},
		{"b's token on a's path", a.ID, b.Token, 403, "not_own_run"},
		{"a DPoP proof as the token", a.ID, f.proofFor(attacker, "GET", runPath(a.ID), ""), 401, "invalid_token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := doURL(t, f.url, "GET", runPath(c.run), c.tok, nil)
			if c.status == 200 {
				if r.status != 200 {
					t.Fatalf("status %d %s; want 200", r.status, r.body)
				}
				if got := decodeRun(t, r.body); got.ID != c.run {
					t.Errorf("read run %s; want %s", got.ID, c.run)
				}
				return
			}
			wantError(t, r, c.status, c.code)
		})
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("the attacker's server was contacted %d times", n)
	}
}

// TestRunTokenLeeway: exp and iat are checked on the server's clock with a
// 60-second leeway: 59 seconds outside the token's life is accepted, 60
// or 61 refused. iat is checked on its own too, with a token that has no
// nbf.
func TestRunTokenLeeway(t *testing.T) {
	f := newIDFixture(t)
	run := f.mustStartRun(nil, nil)
	c := jwtPart(t, run.Token, 1)
	iat, exp := numClaim(t, c, "iat"), numClaim(t, c, "exp")
	if !iat.Equal(t0) || !exp.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("iat %v exp %v; want %v and 5 minutes later", iat, exp, t0)
	}
	// A token without nbf, issued 10 minutes from now.
	future := t0.Add(10 * time.Minute)
	noNBF, err := f.ids.Current().Mint(&token.Claims{Issuer: f.url, Subject: run.SPIFFEID, Audience: f.url + "/v1",
		IssuedAt: future, Expiry: future.Add(5 * time.Minute), Run: string(run.ID)})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := jwtPart(t, noNBF, 1)["nbf"]; ok {
		t.Fatal("the iat-only token has nbf")
	}
	for _, c := range []struct {
		name string
		tok  string
		at   time.Time
		code string // empty: accepted
	}{
		{"at iat", run.Token, iat, ""},
		{"59s after exp", run.Token, exp.Add(59 * time.Second), ""},
		{"60s after exp", run.Token, exp.Add(60 * time.Second), "token_expired"},
		{"61s after exp", run.Token, exp.Add(61 * time.Second), "token_expired"},
		{"10 minutes after exp", run.Token, exp.Add(10 * time.Minute), "token_expired"},
		{"59s before iat and nbf", run.Token, iat.Add(-59 * time.Second), ""},
		{"61s before iat and nbf", run.Token, iat.Add(-61 * time.Second), "token_not_yet_valid"},
		{"no nbf: 59s before iat", noNBF, future.Add(-59 * time.Second), ""},
		{"no nbf: 60s before iat", noNBF, future.Add(-60 * time.Second), ""},
		{"no nbf: 61s before iat", noNBF, future.Add(-61 * time.Second), "token_not_yet_valid"},
		{"no nbf: 5 minutes before iat", noNBF, future.Add(-5 * time.Minute), "token_not_yet_valid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.clock.Set(c.at)
			r := doURL(t, f.url, "GET", runPath(run.ID), c.tok, nil)
			if c.code == "" {
				if r.status != 200 {
					t.Errorf("status %d %s; want 200", r.status, r.body)
				}
				return
			}
			wantError(t, r, 401, c.code)
		})
	}
}

// TestTokenOfStoppedRun: a run's token is refused on the very next request
// once the run is ended, killed, suspended or past its deadline, long
// before the token expires; a suspended run may still end itself.
func TestTokenOfStoppedRun(t *testing.T) {
	f := newIDFixture(t)
	alice := f.tokens["alice"]
	key := newKey(t)

	// read reads the run with its token: bearer, or DPoP when bound.
	read := func(s startedRun) response {
		t.Helper()
		if s.TokenType == "DPoP" {
			return f.dpopFresh("GET", runPath(s.ID), s.Token, key, nil)
		}
		return doURL(t, f.url, "GET", runPath(s.ID), s.Token, nil)
	}
	// end posts end with the run's own token.
	end := func(s startedRun) response {
		t.Helper()
		if s.TokenType == "DPoP" {
			return f.dpopFresh("POST", runPath(s.ID)+"/end", s.Token, key, nil)
		}
		return doURL(t, f.url, "POST", runPath(s.ID)+"/end", s.Token, nil)
	}
	mustRead := func(s startedRun) {
		t.Helper()
		if r := read(s); r.status != 200 {
			t.Fatalf("the run reading itself: %d %s", r.status, r.body)
		}
	}

	for _, verb := range []string{"end", "kill"} {
		for _, bound := range []bool{false, true} {
			name := verb
			var k *ecdsa.PrivateKey
			if bound {
				name, k = verb+" bound", key
			}
			t.Run(name, func(t *testing.T) {
				s := f.mustStartRun(k, nil)
				// The run reads itself: its state is now cached. Then a
				// human stops it and, with no pause, the token is refused.
				mustRead(s)
				mustRead(s)
				f.mustTransition(alice, s.ID, verb, "")
				wantError(t, read(s), 401, "token_revoked")
				if s.TokenType == "DPoP" {
					wantError(t, f.dpopFresh("POST", runPath(s.ID)+"/token", s.Token, key, []byte(`{}`)), 401, "token_revoked")
				}
				wantError(t, end(s), 401, "token_revoked")
			})
		}
	}

	t.Run("the run ends itself", func(t *testing.T) {
		s := f.mustStartRun(nil, nil)
		mustRead(s)
		if r := doURL(t, f.url, "POST", runPath(s.ID)+"/end", s.Token, []byte(`{"reason": "done"}`)); r.status != 200 {
			t.Fatalf("end: %d %s", r.status, r.body)
		}
		wantError(t, read(s), 401, "token_revoked")
		if got := f.getRun(s.ID); got.State != writ.RunEnded {
			t.Errorf("state %s; want ended", got.State)
		}
	})

	t.Run("suspended", func(t *testing.T) {
		s := f.mustStartRun(key, nil)
		mustRead(s)
		f.mustTransition(f.tokens["bob"], s.ID, "suspend", "")
		// Refused for everything but end and heartbeat.
		wantError(t, read(s), 401, "token_revoked")
		wantError(t, f.dpopFresh("POST", runPath(s.ID)+"/token", s.Token, key, []byte(`{}`)), 401, "token_revoked")
		// A human resumes it: the same token works again.
		f.mustTransition(alice, s.ID, "resume", "")
		mustRead(s)
		f.mustTransition(f.tokens["bob"], s.ID, "suspend", "")
		wantError(t, read(s), 401, "token_revoked")
		// It may still end itself.
		r := f.dpopFresh("POST", runPath(s.ID)+"/end", s.Token, key, []byte(`{"reason": "giving up"}`))
		if r.status != 200 {
			t.Fatalf("a suspended run ending itself: %d %s", r.status, r.body)
		}
		if got := f.getRun(s.ID); got.State != writ.RunEnded || got.EndReason != "giving up" {
			t.Errorf("state %s reason %q; want ended, giving up", got.State, got.EndReason)
		}
		wantError(t, read(s), 401, "token_revoked")
	})

	t.Run("past its deadline, not yet swept", func(t *testing.T) {
		start := f.clock.Now()
		s := f.mustStartRun(nil, func(tr *writ.Trigger) { tr.Scope.MaxDuration = writ.Duration(2 * time.Minute) })
		deadline := start.Add(2 * time.Minute)
		if exp := numClaim(t, jwtPart(t, s.Token, 1), "exp"); !exp.Equal(deadline) || !s.Deadline.Equal(deadline) {
			t.Fatalf("token exp %v, run deadline %v; want both %v", exp, s.Deadline, deadline)
		}
		f.clock.Set(deadline.Add(-time.Second))
		mustRead(s)
		// The token itself is still within its leeway; the run is not.
		f.clock.Set(deadline)
		wantError(t, read(s), 401, "token_revoked")
		f.clock.Set(deadline.Add(30 * time.Second))
		d := wantError(t, read(s), 401, "token_revoked")
		if !strings.Contains(d.Message, "expired") {
			t.Errorf("message %q; want it to say the run is expired", d.Message)
		}
		if got := f.getRun(s.ID); got.State != writ.RunActive {
			t.Errorf("stored state %s; want still active (no expiry loop here)", got.State)
		}
	})
}

// heldStore holds the next GetRun, once armed, after it has read the run
// and before it returns, until released.
type heldStore struct {
	testStore
	armed   atomic.Bool
	read    chan struct{}
	release chan struct{}
}

func (s *heldStore) GetRun(ctx context.Context, id writ.RunID) (*writ.Run, error) {
	run, err := s.testStore.GetRun(ctx, id)
	if s.armed.CompareAndSwap(true, false) {
		close(s.read)
		<-s.release
	}
	return run, err
}

// TestRunCacheRace: a request that read the run before a human ended it,
// and finishes after, must not leave the old state in the cache: the next
// request with the run's token is refused.
func TestRunCacheRace(t *testing.T) {
	hs := &heldStore{read: make(chan struct{}), release: make(chan struct{})}
	f := newIDFixtureWith(t, func(s testStore) testStore { hs.testStore = s; return hs })
	s := f.mustStartRun(nil, nil)
	release := sync.OnceFunc(func() { close(hs.release) })
	defer release() // never leave the held request (and the server's Close) hanging
	hs.armed.Store(true)
	first := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", f.url+runPath(s.ID), nil)
		req.Header.Set("Authorization", "Bearer "+s.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	<-hs.read // the first request has read the run, still active
	f.mustTransition(f.tokens["alice"], s.ID, "end", "")
	release()
	if status := <-first; status != 200 {
		t.Fatalf("the request racing the end: %d; want 200 (it started before the end)", status)
	}
	wantError(t, doURL(t, f.url, "GET", runPath(s.ID), s.Token, nil), 401, "token_revoked")
}

// TestDPoPBoundToken: a DPoP-bound token needs, on every request, a fresh
// proof by its key, for this method and URL and this token.
func TestDPoPBoundToken(t *testing.T) {
	f := newIDFixture(t)
	key := newKey(t)
	s := f.mustStartRun(key, nil)
	other := f.mustStartRun(key, nil)
	if s.TokenType != "DPoP" {
		t.Fatalf("token type %q; want DPoP", s.TokenType)
	}
	cnf, _ := jwtPart(t, s.Token, 1)["cnf"].(map[string]any)
	if cnf["jkt"] != thumbprint(t, key) {
		t.Fatalf("cnf %v; want jkt %s", cnf, thumbprint(t, key))
	}
	path := runPath(s.ID)
	ok := func(r response) {
		t.Helper()
		if r.status != 200 {
			t.Fatalf("status %d %s; want 200", r.status, r.body)
		}
	}
	ok(f.dpopFresh("GET", path, s.Token, key, nil))

	thief := newKey(t)
	mk := func(k *ecdsa.PrivateKey, method, url, tok string, at time.Time) string {
		p, err := token.Proof(k, method, url, tok, at)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	now := f.clock.Now()
	for _, c := range []struct {
		name   string
		h      http.Header
		host   string
		status int
		code   string
	}{
		{"stolen, sent as a bearer token", http.Header{"Authorization": {"Bearer " + s.Token}}, "", 401, "dpop_required"},
		{"stolen, bearer with a valid proof", http.Header{"Authorization": {"Bearer " + s.Token}, "Dpop": {mk(key, "GET", f.url+path, s.Token, now)}}, "", 401, "dpop_required"},
		{"stolen, with the thief's own key", http.Header{"Authorization": {"DPoP " + s.Token}, "Dpop": {mk(thief, "GET", f.url+path, s.Token, now)}}, "", 401, "invalid_dpop_proof"},
		{"no proof", http.Header{"Authorization": {"DPoP " + s.Token}}, "", 401, "invalid_dpop_proof"},
		{"two proofs", http.Header{"Authorization": {"DPoP " + s.Token}, "Dpop": {mk(key, "GET", f.url+path, s.Token, now), mk(key, "GET", f.url+path, s.Token, now)}}, "", 401, "invalid_dpop_proof"},
		{"proof for another path", http.Header{"Authorization": {"DPoP " + s.Token}, "Dpop": {mk(key, "GET", f.url+runPath(other.ID), s.Token, now)}}, "", 401, "invalid_dpop_proof"},
		{"proof for the end route", http.Header{"Authorization": {"DPoP " + s.Token}, "Dpop": {mk(key, "POST", f.url+path+"/end", s.Token, now)}}, "", 401, "invalid_dpop_proof"},
		{"proof for another method", http.Header{"Authorization": {"DPoP " + s.Token}, "Dpop": {mk(key, "POST", f.url+path, s.Token, now)}}, "", 401, "invalid_dpop_proof"},
		{"proof for another host", http.Header{"Authorization": {"DPoP " + s.Token}, "Dpop": {mk(key, "GET", "http://evil.example"+path, s.Token, now)}}, "", 401, "invalid_dpop_proof"},
		{"proof for the Host header sent", http.Header{"Authorization": {"DPoP " + s.Token}, "Dpop": {mk(key, "GET", "http://evil.example"+path, s.Token, now)}}, "evil.example", 401, "invalid_dpop_proof"},
		{"proof without ath", http.Header{"Authorization": {"DPoP " + s.Token}, "Dpop": {mk(key, "GET", f.url+path, "", now)}}, "", 401, "invalid_dpop_proof"},
		{"proof for another token", http.Header{"Authorization": {"DPoP " + s.Token}, "Dpop": {mk(key, "GET", f.url+path, other.Token, now)}}, "", 401, "invalid_dpop_proof"},
		{"proof 3 minutes old", http.Header{"Authorization": {"DPoP " + s.Token}, "Dpop": {mk(key, "GET", f.url+path, s.Token, now.Add(-3*time.Minute))}}, "", 401, "invalid_dpop_proof"},
		{"proof 2 minutes ahead", http.Header{"Authorization": {"DPoP " + s.Token}, "Dpop": {mk(key, "GET", f.url+path, s.Token, now.Add(2*time.Minute))}}, "", 401, "invalid_dpop_proof"},
		{"the token as its own proof", http.Header{"Authorization": {"DPoP " + s.Token}, "Dpop": {s.Token}}, "", 401, "invalid_dpop_proof"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, f.send("GET", path, c.h, nil, c.host), c.status, c.code)
		})
	}

	t.Run("replayed proof", func(t *testing.T) {
		p := f.proofFor(key, "GET", path, s.Token)
		ok(f.dpop("GET", path, s.Token, p, nil))
		wantError(t, f.dpop("GET", path, s.Token, p, nil), 401, "dpop_replay")
		// Still refused a minute later, the proof's iat still in its window.
		f.clock.Add(time.Minute)
		wantError(t, f.dpop("GET", path, s.Token, p, nil), 401, "dpop_replay")
		ok(f.dpopFresh("GET", path, s.Token, key, nil))
	})

	t.Run("unbound token with the DPoP scheme", func(t *testing.T) {
		u := f.mustStartRun(nil, nil)
		wantError(t, f.dpopFresh("GET", runPath(u.ID), u.Token, key, nil), 401, "invalid_token")
	})

	// Control: the holder still works after all of the above.
	ok(f.dpopFresh("GET", path, s.Token, key, nil))
}

// TestMintToken: only the DPoP-bound holder mints; what it mints is an
// unbound ≤ 5-minute token for the API or a configured audience, or a
// bound ≤ 15-minute refresh, never past the deadline, recorded by a
// token.issued event that never holds the token.
func TestMintToken(t *testing.T) {
	f := newIDFixture(t)
	key := newKey(t)
	s := f.mustStartRun(key, nil)
	u := f.mustStartRun(nil, nil)
	mint := func(body string) response {
		t.Helper()
		return f.dpopFresh("POST", runPath(s.ID)+"/token", s.Token, key, []byte(body))
	}

	// An unbound token can never mint: neither the first token of an
	// unbound run, nor a token the holder minted.
	wantError(t, doURL(t, f.url, "POST", runPath(u.ID)+"/token", u.Token, []byte(`{}`)), 403, "dpop_required")
	f.clock.Add(10 * time.Second)
	now := f.clock.Now()
	pos := f.lastPos()
	api := decodeMinted(t, mint(`{}`))
	if api.TokenType != "Bearer" || api.Audience != f.url+"/v1" || !api.ExpiresAt.Equal(now.Add(5*time.Minute)) {
		t.Errorf("minted %+v; want a Bearer token for %s/v1 expiring at %v", api, f.url, now.Add(5*time.Minute))
	}
	c := jwtPart(t, api.Token, 1)
	if _, bound := c["cnf"]; bound {
		t.Errorf("the minted API token is bound: %v", c["cnf"])
	}
	if c["sub"] != s.SPIFFEID || c["aud"] != f.url+"/v1" || c["run"] != string(s.ID) || c["iss"] != f.url {
		t.Errorf("claims %v", c)
	}
	if iat, exp := numClaim(t, c, "iat"), numClaim(t, c, "exp"); exp.Sub(iat) != 5*time.Minute {
		t.Errorf("lifetime %v; want 5m", exp.Sub(iat))
	}
	if r := doURL(t, f.url, "GET", runPath(s.ID), api.Token, nil); r.status != 200 {
		t.Errorf("the minted token reading its run: %d %s", r.status, r.body)
	}
	wantError(t, doURL(t, f.url, "POST", runPath(s.ID)+"/token", api.Token, []byte(`{}`)), 403, "dpop_required")

	// The event names the token by jti and never holds it.
	evs := f.eventsAfter(pos)
	if diff := cmp.Diff([]string{writ.EventTokenIssued}, types(evs)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	ev := evs[0]
	if ev.Run != s.ID || ev.Actor != "run:"+string(s.ID) || ev.Details["jti"] != c["jti"] || ev.Details["aud"] != f.url+"/v1" || ev.Details["bound"] != false {
		t.Errorf("token.issued %s", ev.raw)
	}
	sig := api.Token[strings.LastIndex(api.Token, ".")+1:]
	if bytes.Contains(ev.raw, []byte(api.Token)) || bytes.Contains(ev.raw, []byte(sig)) {
		t.Errorf("the token.issued event holds the token: %s", ev.raw)
	}

	// A configured downstream audience.
	down := decodeMinted(t, mint(`{"audience": "`+downstream+`"}`))
	dc := jwtPart(t, down.Token, 1)
	if down.TokenType != "Bearer" || dc["aud"] != downstream || numClaim(t, dc, "exp").Sub(numClaim(t, dc, "iat")) > 5*time.Minute {
		t.Errorf("downstream token %+v claims %v", down, dc)
	}
	if _, bound := dc["cnf"]; bound {
		t.Errorf("the downstream token is bound")
	}
	wantError(t, doURL(t, f.url, "GET", runPath(s.ID), down.Token, nil), 401, "audience_mismatch")

	// Audiences writ does not issue for.
	for _, aud := range []string{"https://evil.example", f.url, f.url + "/v1/", f.url + "/mcp/everything", downstream + "/"} {
		wantError(t, mint(`{"audience": "`+aud+`"}`), 403, "audience_not_allowed")
	}
	// Only API tokens are bound.
	wantError(t, mint(`{"audience": "`+downstream+`", "bind": true}`), 400, "invalid_request")

	// A bound refresh: 15 minutes, the same key.
	f.clock.Add(time.Minute)
	now = f.clock.Now()
	ref := decodeMinted(t, mint(`{"bind": true}`))
	rc := jwtPart(t, ref.Token, 1)
	cnf, _ := rc["cnf"].(map[string]any)
	if ref.TokenType != "DPoP" || cnf["jkt"] != thumbprint(t, key) || !ref.ExpiresAt.Equal(now.Add(15*time.Minute)) ||
		!numClaim(t, rc, "exp").Equal(now.Add(15*time.Minute)) {
		t.Errorf("refresh %+v claims %v; want DPoP bound to the key, expiring at %v", ref, rc, now.Add(15*time.Minute))
	}
	if r := f.dpopFresh("GET", runPath(s.ID), ref.Token, key, nil); r.status != 200 {
		t.Errorf("the refreshed token: %d %s", r.status, r.body)
	}
	wantError(t, doURL(t, f.url, "GET", runPath(s.ID), ref.Token, nil), 401, "dpop_required")

	// Capped at the deadline: a run with 10 minutes left gets a refresh
	// that ends with it, and so does every other token.
	short := f.mustStartRun(key, func(tr *writ.Trigger) { tr.Scope.MaxDuration = writ.Duration(10 * time.Minute) })
	f.clock.Add(8 * time.Minute)
	for _, body := range []string{`{"bind": true}`, `{}`, `{"audience": "` + downstream + `"}`} {
		m := decodeMinted(t, f.dpopFresh("POST", runPath(short.ID)+"/token", short.Token, key, []byte(body)))
		if exp := numClaim(t, jwtPart(t, m.Token, 1), "exp"); !exp.Equal(short.Deadline) || !m.ExpiresAt.Equal(short.Deadline) {
			t.Errorf("%s: exp %v expiresAt %v; want the deadline %v", body, exp, m.ExpiresAt, short.Deadline)
		}
	}
}

// TestStartRunDPoP: the DPoP proof sent with POST /v1/runs binds the first
// token; a bad proof refuses the run and creates nothing; and a proof is
// only recorded once the trigger is authenticated, so anonymous callers
// cannot fill the replay table.
func TestStartRunDPoP(t *testing.T) {
	f := newIDFixture(t)
	key := newKey(t)
	now := f.clock.Now()
	mk := func(method, url string, at time.Time) string {
		p, err := token.Proof(key, method, url, "", at)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	body := f.signed("alice", nil)
	runsBefore, posBefore := len(f.runs()), f.lastPos()
	for _, c := range []struct{ name, proof string }{
		{"proof for another path", mk("POST", f.url+"/v1/runs/x", now)},
		{"proof for another method", mk("GET", f.url+"/v1/runs", now)},
		{"proof for another host", mk("POST", "http://evil.example/v1/runs", now)},
		{"stale proof", mk("POST", f.url+"/v1/runs", now.Add(-3*time.Minute))},
		{"junk", "not-a-proof"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, f.send("POST", "/v1/runs", http.Header{"Dpop": {c.proof}}, body, ""), 401, "invalid_dpop_proof")
		})
	}
	wantError(t, f.send("POST", "/v1/runs", http.Header{"Dpop": {mk("POST", f.url+"/v1/runs", now), mk("POST", f.url+"/v1/runs", now)}}, body, ""), 401, "invalid_dpop_proof")
	if n := len(f.runs()); n != runsBefore {
		t.Fatalf("%d runs after refused proofs; want %d", n, runsBefore)
	}
	if evs := f.eventsAfter(posBefore); len(evs) != 0 {
		t.Errorf("refused proofs wrote events: %v", types(evs))
	}
	// The trigger was not consumed: with a good proof it starts the run.
	s := decodeStarted(t, f.startWith(body, key))
	if s.TokenType != "DPoP" {
		t.Errorf("token type %q; want DPoP", s.TokenType)
	}

	// Proofs sent with a trigger that authenticates no one, or with a
	// known signer's trigger that is refused, are not recorded: the same
	// proof then starts a run. Once it has, it is spent.
	p := f.proofFor(key, "POST", "/v1/runs", "")
	for _, junk := range [][]byte{
		[]byte(`{"payload": "x"}`),
		f.signed("mallory", nil),
		f.signDSSE("alice", []byte(`{"not": "a trigger"}`)),
		f.signed("alice", func(tr *writ.Trigger) { tr.Scope.Tools = []string{"shell:net"} }),
	} {
		r := f.send("POST", "/v1/runs", http.Header{"Dpop": {p}}, junk, "")
		if r.status < 400 || r.status >= 500 {
			t.Fatalf("junk trigger: %d %s; want a 4xx refusal", r.status, r.body)
		}
		if d := errorEnvelope(t, r.body); strings.Contains(d.Code, "dpop") {
			t.Errorf("junk trigger refused for its proof (%s), not its trigger", d.Code)
		}
	}
	decodeStarted(t, f.send("POST", "/v1/runs", http.Header{"Dpop": {p}}, f.signed("alice", nil), ""))
	wantError(t, f.send("POST", "/v1/runs", http.Header{"Dpop": {p}}, f.signed("alice", nil), ""), 401, "dpop_replay")
}

// TestTokenLifetimes: the first token lives 5 minutes unbound, 15 bound,
// and never past the run's deadline.
func TestTokenLifetimes(t *testing.T) {
	f := newIDFixture(t)
	key := newKey(t)
	for _, c := range []struct {
		name     string
		key      *ecdsa.PrivateKey
		duration time.Duration
		typ      string
		life     time.Duration
	}{
		{"unbound", nil, 30 * time.Minute, "Bearer", 5 * time.Minute},
		{"bound", key, 30 * time.Minute, "DPoP", 15 * time.Minute},
		{"unbound, 2 minutes to run", nil, 2 * time.Minute, "Bearer", 2 * time.Minute},
		{"bound, 2 minutes to run", key, 2 * time.Minute, "DPoP", 2 * time.Minute},
		{"bound, 10 minutes to run", key, 10 * time.Minute, "DPoP", 10 * time.Minute},
	} {
		t.Run(c.name, func(t *testing.T) {
			now := f.clock.Now()
			s := f.mustStartRun(c.key, func(tr *writ.Trigger) { tr.Scope.MaxDuration = writ.Duration(c.duration) })
			cl := jwtPart(t, s.Token, 1)
			iat, exp := numClaim(t, cl, "iat"), numClaim(t, cl, "exp")
			if s.TokenType != c.typ || !iat.Equal(now) || exp.Sub(iat) != c.life || !s.TokenExpiresAt.Equal(exp) {
				t.Errorf("type %s iat %v exp %v expiresAt %v; want %s, %v, %v later", s.TokenType, iat, exp, s.TokenExpiresAt, c.typ, now, c.life)
			}
			if exp.After(s.Deadline) {
				t.Errorf("exp %v is past the deadline %v", exp, s.Deadline)
			}
			want := map[string]any{"iss": f.url, "sub": "spiffe://" + trustDomain + "/agent/refactor-bot/run/" + string(s.ID), "aud": f.url + "/v1",
				"run": string(s.ID), "agent": "refactor-bot", "profile": "refactor", "ticket": "jira:ENG-123"}
			for k, v := range want {
				if cl[k] != v {
					t.Errorf("claim %s = %v; want %v", k, cl[k], v)
				}
			}
			f.clock.Add(time.Second)
		})
	}
}

// TestMintInTheLastSecond: a run whose deadline falls within the current
// second cannot get a token (exp would not be after iat in whole seconds):
// the holder is refused as for an expired run, not given a 500.
func TestMintInTheLastSecond(t *testing.T) {
	f := newIDFixture(t)
	key := newKey(t)
	f.clock.Set(t0.Add(500 * time.Millisecond))
	s := f.mustStartRun(key, func(tr *writ.Trigger) { tr.Scope.MaxDuration = writ.Duration(2 * time.Minute) })
	// 1.2 s left: the token ends at the deadline's second.
	f.clock.Set(s.Deadline.Add(-1200 * time.Millisecond))
	m := decodeMinted(t, f.dpopFresh("POST", runPath(s.ID)+"/token", s.Token, key, []byte(`{}`)))
	if exp := numClaim(t, jwtPart(t, m.Token, 1), "exp"); !exp.Equal(s.Deadline.Truncate(time.Second)) {
		t.Errorf("exp %v; want the deadline's second %v", exp, s.Deadline.Truncate(time.Second))
	}
	// 0.2 s left, in the same second as the deadline.
	f.clock.Set(s.Deadline.Add(-200 * time.Millisecond))
	wantError(t, f.dpopFresh("POST", runPath(s.ID)+"/token", s.Token, key, []byte(`{}`)), 401, "token_revoked")
}

// TestStoppedRunWritesNoProof: a stopped run's request is refused before
// its DPoP proof is checked, so its jti is never written: a looping or
// flooding agent of a killed run costs no store writes.
func TestStoppedRunWritesNoProof(t *testing.T) {
	f := newIDFixture(t)
	key := newKey(t)
	s := f.mustStartRun(key, nil)
	path := runPath(s.ID)
	if r := f.do("POST", path+"/end", f.tokens["alice"], nil); r.status != 200 {
		t.Fatalf("end: %d %s", r.status, r.body)
	}
	p := f.proofFor(key, "GET", path, s.Token)
	wantError(t, f.dpop("GET", path, s.Token, p, nil), 401, "token_revoked")
	jti, _ := jwtPart(t, p, 1)["jti"].(string)
	if jti == "" {
		t.Fatal("proof without jti")
	}
	// Had the proof been recorded, this use of its jti would be a replay.
	if err := f.store.UseProof(context.Background(), thumbprint(t, key), jti, f.clock.Now().Add(time.Minute)); err != nil {
		t.Fatalf("the stopped run's proof was recorded: %v", err)
	}
}
