package token

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"testing"
)

// reportRate adds an ops/s metric (per core when run with -cpu 1; the
// benchmarks are sequential).
func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkMint mints a DPoP-bound run API token. Its crypto floor is
// BenchmarkRawES256Sign.
func BenchmarkMint(b *testing.B) {
	f := newDPoPFixture(b)
	c := testClaims()
	c.JKT = f.jkt
	b.ReportAllocs()
	for b.Loop() {
		c.ID = "" // a fresh jti every time, as in production
		if _, err := f.signer.Mint(c); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkVerify verifies a DPoP-bound run API token. Its crypto floor is
// BenchmarkRawES256Verify.
func BenchmarkVerify(b *testing.B) {
	f := newDPoPFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.v.Verify(f.token, testAudience); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkProof makes a DPoP proof for one request (the client's cost).
func BenchmarkProof(b *testing.B) {
	f := newDPoPFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Proof(f.client, "POST", testURL, f.token, testNow); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkVerifyProof verifies one DPoP proof with ath and jkt checks (the
// server's cost per request, on top of Verify; replay detection excluded).
func BenchmarkVerifyProof(b *testing.B) {
	f := newDPoPFixture(b)
	p, err := Proof(f.client, "POST", testURL, f.token, testNow)
	if err != nil {
		b.Fatal(err)
	}
	c := f.check()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyProof(p, c); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkRawES256Sign is the crypto floor of BenchmarkMint: SHA-256 and
// an ECDSA P-256 signature over a signing input of a minted token's size.
func BenchmarkRawES256Sign(b *testing.B) {
	f := newFixture(b)
	raw, err := f.signer.Mint(testClaims())
	if err != nil {
		b.Fatal(err)
	}
	input := []byte(raw[:strings.LastIndexByte(raw, '.')])
	b.ReportAllocs()
	for b.Loop() {
		h := sha256.Sum256(input)
		if _, err := ecdsa.SignASN1(rand.Reader, f.key, h[:]); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkRawES256Verify is the crypto floor of BenchmarkVerify and
// BenchmarkVerifyProof: SHA-256 and an ECDSA P-256 verification.
func BenchmarkRawES256Verify(b *testing.B) {
	f := newFixture(b)
	raw, err := f.signer.Mint(testClaims())
	if err != nil {
		b.Fatal(err)
	}
	input := []byte(raw[:strings.LastIndexByte(raw, '.')])
	h := sha256.Sum256(input)
	sig, err := ecdsa.SignASN1(rand.Reader, f.key, h[:])
	if err != nil {
		b.Fatal(err)
	}
	pub := &f.key.PublicKey
	b.ReportAllocs()
	for b.Loop() {
		h := sha256.Sum256(input)
		if !ecdsa.VerifyASN1(pub, h[:], sig) {
			b.Fatal("does not verify")
		}
	}
	reportRate(b)
}
