package trigger

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/writ-dev/writ"
)

// FuzzVerify feeds Verify arbitrary bodies, and arbitrary payloads signed
// with a key of the ring (so the strict decoding and validation behind the
// signature are reached too). Verify must never panic, must fail only with
// a *writ.Error, and any success must carry the digest of its payload and
// a payload that passes validation.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	p := payload(f, nil)
	f.Add(signDSSE(f, p, fx.alice), []byte(nil))
	f.Add(signDSSE(f, p, fx.tickets), []byte(nil))
	f.Add(signSSH(f, p, fx.alice), []byte(nil))
	f.Add(signSSH(f, p, fx.tickets), []byte(nil))
	f.Add([]byte(`{"payload":"e30=","sshsig":"-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"}`), []byte(nil))
	f.Add([]byte(`{"payloadType":"x","payload":"","signatures":[{"keyid":"","sig":""}]}`), []byte(nil))
	f.Add([]byte("junk"), p)
	f.Add([]byte(nil), []byte(`{"agent":"a","Agent":"b"}`))
	f.Add([]byte(nil), append(p, p...))
	f.Fuzz(func(t *testing.T, body, signed []byte) {
		check := func(body []byte) {
			v, err := Verify(body, fx.ring)
			if err != nil {
				var e *writ.Error
				if !errors.As(err, &e) || e.Code == "" {
					t.Fatalf("Verify error %v (%T) is not a *writ.Error with a code", err, err)
				}
				return
			}
			sum := sha256.Sum256(v.Payload)
			if v.Digest != "sha256:"+hex.EncodeToString(sum[:]) {
				t.Fatalf("Digest %s is not the SHA-256 of the payload", v.Digest)
			}
			if err := validate(&v.Trigger); err != nil {
				t.Fatalf("accepted trigger fails validation: %v", err)
			}
			if v.Signer != "alice" && v.Signer != "tickets" {
				t.Fatalf("accepted signer %q is not in the ring", v.Signer)
			}
			_ = fx.rules.Check(v, testNow) // must not panic
		}
		check(body)
		if signed != nil {
			check(signDSSE(t, signed, fx.alice))
		}
	})
}
