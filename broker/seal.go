package broker

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Sealer seals values at rest (static secrets, revocation handles) with
// AES-256-GCM under a key that lives outside the database (a key file or
// an environment variable). Additional data binds each sealed value to
// what it is (a secret's environment, name and version; a lease id), so a
// sealed value moved to another row does not open.
type Sealer struct {
	aead cipher.AEAD
}

// sealVersion prefixes every sealed value, so the format can change.
const sealVersion = 1

// KeySize is the length of a broker key.
const KeySize = 32

// NewSealer returns a sealer for a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("broker key: %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// ParseKey reads a broker key as stored in a key file or the environment:
// 32 bytes in standard base64 (what writ init writes), surrounding space
// ignored.
func ParseKey(text string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil || len(k) != KeySize {
		return nil, errors.New("a broker key is 32 random bytes in base64 (head -c 32 /dev/urandom | base64)")
	}
	return k, nil
}

// Seal seals plain, bound to ad.
func (s *Sealer) Seal(plain, ad []byte) ([]byte, error) {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return s.aead.Seal(out, out[1:], plain, ad), nil
}

// Open opens a value Seal sealed with the same ad.
func (s *Sealer) Open(sealed, ad []byte) ([]byte, error) {
	n := 1 + s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, errors.New("broker: not a sealed value")
	}
	plain, err := s.aead.Open(nil, sealed[1:n], sealed[n:], ad)
	if err != nil {
		return nil, errors.New("broker: the sealed value does not open with this key and binding")
	}
	return plain, nil
}
