package token

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Algorithm is the only signing algorithm writ issues and accepts for run
// identities.
const Algorithm = "ES256"

// KeyID returns the RFC 7638 JWK thumbprint (SHA-256, base64url without
// padding) of an ECDSA P-256 public key. writ uses it as the kid of its
// signing keys.
func KeyID(pub *ecdsa.PublicKey) (string, error) {
	if pub == nil {
		return "", errors.New("key id: no public key")
	}
	return Thumbprint(pub)
}

// Thumbprint returns the RFC 7638 JWK thumbprint (SHA-256, base64url without
// padding) of an ECDSA P-256 (*ecdsa.PublicKey) or Ed25519
// (ed25519.PublicKey) public key. It is the jkt of a DPoP key (RFC 9449).
// Any other key type or curve is an error.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	// The members are in lexicographic order with no whitespace (RFC 7638
	// §3.2), and x and y are the fixed-size coordinates (RFC 7518 §6.2.1.2).
	var buf [128]byte
	b := buf[:0]
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		x, y, err := p256Coordinates(k)
		if err != nil {
			return "", fmt.Errorf("thumbprint: %w", err)
		}
		b = append(b, `{"crv":"P-256","kty":"EC","x":"`...)
		b = base64.RawURLEncoding.AppendEncode(b, x)
		b = append(b, `","y":"`...)
		b = base64.RawURLEncoding.AppendEncode(b, y)
		b = append(b, `"}`...)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", fmt.Errorf("thumbprint: an Ed25519 public key has %d bytes, not %d", ed25519.PublicKeySize, len(k))
		}
		b = append(b, `{"crv":"Ed25519","kty":"OKP","x":"`...)
		b = base64.RawURLEncoding.AppendEncode(b, k)
		b = append(b, `"}`...)
	default:
		return "", fmt.Errorf("thumbprint: unsupported key type %T; want an ECDSA P-256 or Ed25519 public key", pub)
	}
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// p256Coordinates returns the 32-byte big-endian x and y of a valid P-256
// public key.
func p256Coordinates(k *ecdsa.PublicKey) (x, y []byte, err error) {
	if k == nil {
		return nil, nil, errors.New("no public key")
	}
	if k.Curve != elliptic.P256() {
		return nil, nil, errors.New("not a P-256 key; writ uses ECDSA P-256 only")
	}
	p, err := k.Bytes() // 0x04 || x || y; fails for a point not on the curve
	if err != nil {
		return nil, nil, fmt.Errorf("invalid P-256 public key: %w", err)
	}
	return p[1:33], p[33:65], nil
}

// PublicKey is a published verification key.
type PublicKey struct {
	// ID is the key's kid: KeyID(Key). Empty means "compute it".
	ID  string
	Key *ecdsa.PublicKey
	// NotAfter is when the key stops being published: the expiry of the last
	// token it signed. The zero time means the key is current, with no end.
	// JWKS does not render it; the caller drops keys past it.
	NotAfter time.Time
}

// jwk is a public P-256 signing key as JWKS renders it. The field order is
// the output order.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKS returns the JSON Web Key Set document (RFC 7517 §5) for keys:
//
//	{"keys":[{"kty":"EC","crv":"P-256","x":…,"y":…,"kid":…,"alg":"ES256","use":"sig"}]}
//
// sorted by kid, so the same keys always give the same bytes. Every key must
// be a valid P-256 public key whose ID, when set, is its KeyID; two keys
// with one kid are an error. No keys give {"keys":[]}.
func JWKS(keys []PublicKey) ([]byte, error) {
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: make([]jwk, 0, len(keys))}
	for i, k := range keys {
		x, y, err := p256Coordinates(k.Key)
		if err != nil {
			return nil, fmt.Errorf("jwks: key %d: %w", i, err)
		}
		kid, err := KeyID(k.Key)
		if err != nil {
			return nil, fmt.Errorf("jwks: key %d: %w", i, err)
		}
		if k.ID != "" && k.ID != kid {
			return nil, fmt.Errorf("jwks: key %d: id %q is not the key's thumbprint %q", i, k.ID, kid)
		}
		set.Keys = append(set.Keys, jwk{
			Kty: "EC",
			Crv: "P-256",
			X:   base64.RawURLEncoding.EncodeToString(x),
			Y:   base64.RawURLEncoding.EncodeToString(y),
			Kid: kid,
			Alg: Algorithm,
			Use: "sig",
		})
	}
	slices.SortFunc(set.Keys, func(a, b jwk) int { return strings.Compare(a.Kid, b.Kid) })
	for i := 1; i < len(set.Keys); i++ {
		if set.Keys[i].Kid == set.Keys[i-1].Kid {
			return nil, fmt.Errorf("jwks: key %q is listed twice", set.Keys[i].Kid)
		}
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}
