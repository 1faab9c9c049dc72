package broker_test

import (
	"bytes"
	"testing"

	"github.com/writ-dev/writ/broker"
)

// TestSealerBindings: a sealed value opens only with its key and its
// binding — moved to another row (another lease id, another secret's name
// or version), altered, or opened with another key, it does not.
func TestSealerBindings(t *testing.T) {
	key := bytes.Repeat([]byte{7}, broker.KeySize)
	s, err := broker.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	ad := []byte("writ-secret\x00production\x00stripe-key\x001")
	sealed, err := s.Seal([]byte("sk_live_canary"), ad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("sk_live_canary")) {
		t.Fatal("the sealed value holds the plaintext")
	}
	if got, err := s.Open(sealed, ad); err != nil || string(got) != "sk_live_canary" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	other, _ := broker.NewSealer(bytes.Repeat([]byte{8}, broker.KeySize))
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for _, tt := range []struct {
		name   string
		s      *broker.Sealer
		sealed []byte
		ad     string
	}{
		{"another secret's name", s, sealed, "writ-secret\x00production\x00db-password\x001"},
		{"another version", s, sealed, "writ-secret\x00production\x00stripe-key\x002"},
		{"another environment", s, sealed, "writ-secret\x00staging\x00stripe-key\x001"},
		{"altered bytes", s, tampered, string(ad)},
		{"another key", other, sealed, string(ad)},
		{"truncated", s, sealed[:10], string(ad)},
	} {
		if _, err := tt.s.Open(tt.sealed, []byte(tt.ad)); err == nil {
			t.Errorf("%s: the sealed value opened", tt.name)
		}
	}
	if _, err := broker.ParseKey("c2hvcnQ="); err == nil {
		t.Error("a key that is not 32 bytes parsed")
	}
}
