package trigger

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/writ-dev/writ"
)

func benchVerify(b *testing.B, body []byte, ring *KeyRing) {
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Verify(body, ring); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyDSSEEd25519(b *testing.B) {
	f := newFixture(b)
	benchVerify(b, signDSSE(b, payload(b, nil), f.alice), f.ring)
}

func BenchmarkVerifyDSSEECDSA(b *testing.B) {
	f := newFixture(b)
	benchVerify(b, signDSSE(b, payload(b, func(t *writ.Trigger) { t.Issuer = "tickets" }), f.tickets), f.ring)
}

func BenchmarkVerifySSH(b *testing.B) {
	f := newFixture(b)
	benchVerify(b, signSSH(b, payload(b, nil), f.alice), f.ring)
}

// BenchmarkRawEd25519Verify is the crypto floor of BenchmarkVerifyDSSEEd25519.
func BenchmarkRawEd25519Verify(b *testing.B) {
	f := newFixture(b)
	pae := dsse.PAE(writ.TriggerPayloadType, payload(b, nil))
	sig := ed25519.Sign(f.alice, pae)
	pub := f.alice.Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, pae, sig) {
			b.Fatal("does not verify")
		}
	}
}

// BenchmarkRawECDSAVerify is the crypto floor of BenchmarkVerifyDSSEECDSA.
func BenchmarkRawECDSAVerify(b *testing.B) {
	f := newFixture(b)
	pae := dsse.PAE(writ.TriggerPayloadType, payload(b, nil))
	h := sha256.Sum256(pae)
	sig, err := ecdsa.SignASN1(rand.Reader, f.tickets, h[:])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		h := sha256.Sum256(pae)
		if !ecdsa.VerifyASN1(&f.tickets.PublicKey, h[:], sig) {
			b.Fatal("does not verify")
		}
	}
}
