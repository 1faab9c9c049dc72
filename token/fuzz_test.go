package token

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
)

// rawJWS assembles a compact JWS from raw header and payload bytes.
func rawJWS(hdr, payload []byte, sign signFunc) string {
	input := b64(hdr) + "." + b64(payload)
	return input + "." + b64(sign([]byte(input)))
}

// signedBy reports whether raw is a compact JWS whose ES256 signature over
// its exact first two parts verifies under pub. It shares no code with the
// package or go-jose.
func signedBy(raw string, pub *ecdsa.PublicKey) bool {
	i := strings.LastIndexByte(raw, '.')
	if i < 0 {
		return false
	}
	sig, err := b64dec(raw[i+1:])
	if err != nil || len(sig) != 64 {
		return false
	}
	h := sha256.Sum256([]byte(raw[:i]))
	return ecdsa.Verify(pub, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
}

var verifyCodes = map[string]bool{
	CodeInvalidToken: true, CodeUnknownKID: true, CodeTokenExpired: true, CodeTokenNotYetValid: true,
	CodeAudienceMismatch: true, CodeIssuerMismatch: true,
}

// FuzzVerify feeds Verify arbitrary tokens, and arbitrary headers and
// payloads signed with writ's key (so the checks behind the signature are
// reached too). Verify must not panic, must fail only with a *writ.Error of
// kind unauthenticated and a known code, and anything it accepts must be
// signed by writ's key over its exact bytes and carry claims that pass every
// check.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	minted, err := fx.signer.Mint(testClaims())
	if err != nil {
		f.Fatal(err)
	}
	c := testClaims()
	c.JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	c.NotBefore = testNow
	c.Act = &Actor{Subject: "spiffe://td/a", Act: &Actor{Subject: "spiffe://td/b"}}
	bound, err := fx.signer.Mint(c)
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(minted, ".")
	hdr, _ := b64dec(parts[0])
	payload, _ := b64dec(parts[1])
	f.Add(minted, []byte(nil), []byte(nil))
	f.Add(bound, []byte(nil), []byte(nil))
	f.Add(parts[0]+"."+parts[1]+".", []byte(nil), []byte(nil))
	f.Add(b64([]byte(`{"alg":"none"}`))+"."+parts[1]+".", []byte(nil), []byte(nil))
	f.Add("", hdr, payload)
	f.Add("", []byte(`{"alg":"ES256","kid":"`+fx.kid+`","typ":"dpop+jwt"}`), payload)
	f.Add("", []byte(`{"alg":"ES256","kid":"`+fx.kid+`","crit":["b64"],"b64":false}`), payload)
	f.Add("", hdr, []byte(`{"iss":"`+testIssuer+`","sub":"spiffe://a/b","aud":["`+testAudience+`"],"exp":1e10,"iat":0,"jti":"j","run":"r","cnf":{}}`))
	f.Add("", hdr, []byte(`{"iss":"`+testIssuer+`","sub":"spiffe://a/b","aud":"`+testAudience+`","exp":9999999999.9,"iat":1.5,"jti":"j","run":"r","act":{"sub":"x","act":{"sub":"y"}}}`))
	f.Add("{}", []byte(nil), []byte(nil))
	f.Fuzz(func(t *testing.T, raw string, hdr, payload []byte) {
		check := func(raw string) {
			c, err := fx.v.Verify(raw, testAudience)
			if err != nil {
				var e *writ.Error
				if !errors.As(err, &e) || e.Kind != writ.KindUnauthenticated || !verifyCodes[e.Code] {
					t.Fatalf("Verify error %v (%T) is not an unauthenticated *writ.Error with a known code", err, err)
				}
				return
			}
			if !signedBy(raw, &fx.key.PublicKey) {
				t.Fatalf("Verify accepted a token not signed by writ's key over its exact bytes: %q", raw)
			}
			now, leeway := testNow, fx.v.Leeway
			switch {
			case c.Issuer != testIssuer, c.Audience != testAudience:
				t.Fatalf("accepted iss %q aud %q", c.Issuer, c.Audience)
			case !c.Expiry.After(now.Add(-leeway)), c.IssuedAt.After(now.Add(leeway)), c.NotBefore.After(now.Add(leeway)):
				t.Fatalf("accepted times iat %v nbf %v exp %v at %v", c.IssuedAt, c.NotBefore, c.Expiry, now)
			case !c.Expiry.After(c.IssuedAt):
				t.Fatalf("accepted exp %v not after iat %v", c.Expiry, c.IssuedAt)
			case !validSPIFFEID(c.Subject), c.Run == "", c.ID == "":
				t.Fatalf("accepted sub %q run %q jti %q", c.Subject, c.Run, c.ID)
			}
			// What Verify accepts, Mint can make again.
			if _, err := fx.signer.Mint(c); err != nil {
				t.Fatalf("Mint(accepted claims) = %v", err)
			}
		}
		check(raw)
		if payload != nil {
			if hdr == nil {
				hdr = []byte(`{"alg":"ES256","kid":"` + fx.kid + `","typ":"JWT"}`)
			}
			check(rawJWS(hdr, payload, es256(t, fx.key)))
		}
	})
}

// FuzzVerifyProof feeds VerifyProof arbitrary proofs, and arbitrary headers
// and payloads signed with the client's DPoP key. It must not panic, must
// fail only with a *writ.Error of code invalid_dpop_proof, and anything it
// accepts must be signed by the client's key (the check names its jkt) over
// its exact bytes, for this request, at an iat inside the window.
func FuzzVerifyProof(f *testing.F) {
	fx := newDPoPFixture(f)
	check := fx.check()
	valid, err := Proof(fx.client, "POST", testURL, fx.token, testNow)
	if err != nil {
		f.Fatal(err)
	}
	stolen, err := Proof(fx.evil, "POST", testURL, fx.token, testNow)
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	hdr, _ := b64dec(parts[0])
	payload, _ := b64dec(parts[1])
	f.Add(valid, []byte(nil), []byte(nil))
	f.Add(stolen, []byte(nil), []byte(nil))
	f.Add(fx.token, []byte(nil), []byte(nil))
	f.Add("", hdr, payload)
	f.Add("", hdr, []byte(`{"jti":"x","htm":"POST","htu":"HTTPS://WRIT.EXAMPLE.COM:443/v1/runs/`+testRun+`/actions?q#f","iat":1772366399.9,"ath":"`+accessTokenHash(fx.token)+`"}`))
	f.Add("", []byte(strings.Replace(string(hdr), `"typ":"dpop+jwt"`, `"typ":"JWT"`, 1)), payload)
	f.Add("", []byte(strings.Replace(string(hdr), `"kty":"EC"`, `"d":"AAAA","kty":"EC"`, 1)), payload)
	f.Fuzz(func(t *testing.T, proof string, hdr, payload []byte) {
		verify := func(proof string) {
			pc, err := VerifyProof(proof, check)
			if err != nil {
				var e *writ.Error
				if !errors.As(err, &e) || e.Kind != writ.KindUnauthenticated || e.Code != CodeInvalidDPoPProof {
					t.Fatalf("VerifyProof error %v (%T) is not an unauthenticated *writ.Error with code %s", err, err, CodeInvalidDPoPProof)
				}
				return
			}
			if pc.JKT != fx.jkt || !signedBy(proof, &fx.client.PublicKey) {
				t.Fatalf("VerifyProof accepted a proof not signed by the client's key over its exact bytes: %q", proof)
			}
			if pc.JTI == "" || pc.IssuedAt.Before(testNow.Add(-MaxProofAge-check.Leeway)) || pc.IssuedAt.After(testNow.Add(check.Leeway)) {
				t.Fatalf("accepted jti %q iat %v", pc.JTI, pc.IssuedAt)
			}
		}
		verify(proof)
		if payload != nil {
			if hdr == nil {
				hdr = []byte(`{"typ":"dpop+jwt","alg":"ES256","jwk":` + string(mustJSON(t, publicJWK(t, &fx.client.PublicKey))) + `}`)
			}
			verify(rawJWS(hdr, payload, es256(t, fx.client)))
		}
	})
}

// TestFuzzSeedsAreAccepted makes sure the fuzzers start from inputs that
// pass, so they explore behind every check.
func TestFuzzSeedsAreAccepted(t *testing.T) {
	fx := newDPoPFixture(t)
	if _, err := fx.v.Verify(fx.token, testAudience); err != nil {
		t.Errorf("Verify(seed token) = %v", err)
	}
	p, err := Proof(fx.client, "POST", testURL, fx.token, testNow.Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyProof(p, fx.check()); err != nil {
		t.Errorf("VerifyProof(seed proof) = %v", err)
	}
}
