package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestThumbprintVectors(t *testing.T) {
	// RFC 8037 Appendix A.3: the thumbprint of the Ed25519 key of A.2.
	x, err := b64dec("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Thumbprint(ed25519.PublicKey(x))
	if want := "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; err != nil || got != want {
		t.Errorf("Thumbprint(RFC 8037 key) = %q, %v; want %q", got, err, want)
	}

	// RFC 9449 §6.1: the jkt of the P-256 key of the proof in §4.1.
	px, err := b64dec("l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs")
	if err != nil {
		t.Fatal(err)
	}
	py, err := b64dec("9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), slices.Concat([]byte{4}, px, py))
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func() (string, error){
		"Thumbprint": func() (string, error) { return Thumbprint(pub) },
		"KeyID":      func() (string, error) { return KeyID(pub) },
	} {
		got, err := f()
		if want := "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"; err != nil || got != want {
			t.Errorf("%s(RFC 9449 key) = %q, %v; want %q", name, got, err, want)
		}
	}
}

// TestThumbprintMatchesGoJose checks the hand-written thumbprint against
// go-jose's on random keys, including keys whose coordinates have leading
// zero bytes.
func TestThumbprintMatchesGoJose(t *testing.T) {
	short := 0
	for i := 0; i < 300; i++ {
		k := mustP256(t)
		p, err := k.PublicKey.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if p[1] == 0 || p[33] == 0 {
			short++
		}
		got, err := Thumbprint(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		want, err := (&jose.JSONWebKey{Key: &k.PublicKey}).Thumbprint(crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if got != b64(want) {
			t.Fatalf("Thumbprint = %s; go-jose says %s", got, b64(want))
		}
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Thumbprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	want, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if got != b64(want) {
		t.Errorf("Ed25519 Thumbprint = %s; go-jose says %s", got, b64(want))
	}
	t.Logf("%d of 300 keys had a coordinate with a leading zero byte", short)
}

func TestThumbprintRefuses(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := mustP256(t)
	for name, pub := range map[string]crypto.PublicKey{
		"nil":                      nil,
		"nil ECDSA key":            (*ecdsa.PublicKey)(nil),
		"P-384":                    &p384.PublicKey,
		"RSA":                      &rsaKey.PublicKey,
		"ECDSA by value":           k.PublicKey,
		"Ed25519 by pointer":       &edPub,
		"Ed25519 of 31 bytes":      edPub[:31],
		"private key":              k,
		"point not on the curve":   &ecdsa.PublicKey{Curve: elliptic.P256(), X: k.X, Y: k.X},
		"a string":                 "key",
		"an ECDSA key of no curve": &ecdsa.PublicKey{},
	} {
		if got, err := Thumbprint(pub); err == nil {
			t.Errorf("Thumbprint(%s) = %q, nil; want an error", name, got)
		}
	}
	if _, err := KeyID(nil); err == nil {
		t.Error("KeyID(nil) succeeded")
	}
	if _, err := KeyID(&p384.PublicKey); err == nil {
		t.Error("KeyID(P-384 key) succeeded")
	}
}

func TestJWKS(t *testing.T) {
	f := newFixture(t)
	second := mustP256(t)
	keys := []PublicKey{
		{ID: f.kid, Key: &f.key.PublicKey},
		{Key: &second.PublicKey, NotAfter: testNow.Add(time.Hour)}, // ID computed
	}
	got, err := JWKS(keys)
	if err != nil {
		t.Fatal(err)
	}

	// The exact shape, sorted by kid.
	var entries []string
	for _, k := range keys {
		x, y, err := p256Coordinates(k.Key)
		if err != nil {
			t.Fatal(err)
		}
		kid, err := KeyID(k.Key)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, fmt.Sprintf(`{"kty":"EC","crv":"P-256","x":"%s","y":"%s","kid":"%s","alg":"ES256","use":"sig"}`, b64(x), b64(y), kid))
	}
	slices.SortFunc(entries, func(a, b string) int {
		ka := a[strings.Index(a, `"kid"`):]
		kb := b[strings.Index(b, `"kid"`):]
		return strings.Compare(ka, kb)
	})
	if want := `{"keys":[` + strings.Join(entries, ",") + `]}`; string(got) != want {
		t.Errorf("JWKS =\n%s\nwant\n%s", got, want)
	}

	// Deterministic whatever the input order.
	again, err := JWKS([]PublicKey{keys[1], keys[0]})
	if err != nil || string(again) != string(got) {
		t.Errorf("JWKS of the keys in another order differs:\n%s\n%s", again, got)
	}

	// A standard parser reads it back, and a minted token verifies with it.
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(got, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("parsed %d keys; want 2", len(set.Keys))
	}
	for _, k := range set.Keys {
		if !k.Valid() || !k.IsPublic() || k.Algorithm != "ES256" || k.Use != "sig" {
			t.Errorf("parsed key %s: valid %v, public %v, alg %q, use %q", k.KeyID, k.Valid(), k.IsPublic(), k.Algorithm, k.Use)
		}
	}
	raw, err := f.signer.Mint(testClaims())
	if err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify(set); err != nil {
		t.Errorf("go-jose cannot verify a minted token with the JWKS: %v", err)
	}
	v := *f.v
	v.Keys = func(kid string) (*ecdsa.PublicKey, bool) {
		ks := set.Key(kid)
		if len(ks) != 1 {
			return nil, false
		}
		pub, ok := ks[0].Key.(*ecdsa.PublicKey)
		return pub, ok
	}
	if _, err := v.Verify(raw, testAudience); err != nil {
		t.Errorf("Verify with keys read from the JWKS = %v", err)
	}
}

func TestJWKSEmpty(t *testing.T) {
	got, err := JWKS(nil)
	if err != nil || string(got) != `{"keys":[]}` {
		t.Errorf("JWKS(nil) = %s, %v; want {\"keys\":[]}", got, err)
	}
}

func TestJWKSRefuses(t *testing.T) {
	a, b := mustP256(t), mustP256(t)
	kidB, err := KeyID(&b.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, keys := range map[string][]PublicKey{
		"an id that is not the thumbprint": {{ID: kidB, Key: &a.PublicKey}},
		"a key twice":                      {{Key: &a.PublicKey}, {Key: &a.PublicKey}},
		"a P-384 key":                      {{Key: &p384.PublicKey}},
		"no key":                           {{ID: kidB}},
	} {
		if got, err := JWKS(keys); err == nil {
			t.Errorf("%s: JWKS = %s, nil; want an error", name, got)
		}
	}
}

// TestJWKSParsesBack checks that ParseJWKS, the relying party's reader,
// reads back what JWKS writes.
func TestJWKSParsesBack(t *testing.T) {
	a, b := mustP256(t), mustP256(t)
	doc, err := JWKS([]PublicKey{{Key: &a.PublicKey}, {Key: &b.PublicKey}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseJWKS(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("ParseJWKS read %d keys; want 2", len(got))
	}
	for _, k := range []*ecdsa.PrivateKey{a, b} {
		kid, err := KeyID(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if pub := got[kid]; pub == nil || !pub.Equal(&k.PublicKey) {
			t.Errorf("ParseJWKS()[%s] = %v; want the key with that thumbprint", kid, pub)
		}
	}
}
