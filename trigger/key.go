package trigger

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/writ-dev/writ"
)

// acceptedKeys names the accepted key types in error messages.
const acceptedKeys = `accepted: Ed25519 or ECDSA P-256, as an SSH public key line ("ssh-ed25519 AAAA…", "ecdsa-sha2-nistp256 AAAA…") or a PEM "PUBLIC KEY" block`

// Fingerprint returns "SHA256:<base64 without padding>" of the SSH wire form
// of pub, as ssh-keygen -l prints it. pub is an ed25519.PublicKey, an
// *ecdsa.PublicKey on P-256 or an ssh.PublicKey.
func Fingerprint(pub any) (string, error) {
	switch k := pub.(type) {
	case ssh.PublicKey:
		return ssh.FingerprintSHA256(k), nil
	case ed25519.PublicKey, *ecdsa.PublicKey:
		sk, err := sshKey(k)
		if err != nil {
			return "", err
		}
		return ssh.FingerprintSHA256(sk), nil
	default:
		return "", fmt.Errorf("fingerprint: unsupported key type %T (%s)", pub, acceptedKeys)
	}
}

// sshKey converts an Ed25519 or ECDSA P-256 public key to its SSH form.
func sshKey(pub crypto.PublicKey) (ssh.PublicKey, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("ed25519 public key has %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
	case *ecdsa.PublicKey:
		if k == nil || k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA key is not on P-256 (%s)", acceptedKeys)
		}
	default:
		return nil, fmt.Errorf("unsupported key type %T (%s)", pub, acceptedKeys)
	}
	return ssh.NewPublicKey(pub)
}

// ParsePublicKey parses one configured public key: an SSH authorized_keys
// line ("ssh-ed25519 AAAA… comment", "ecdsa-sha2-nistp256 AAAA…") without
// options, or a PEM "PUBLIC KEY" (PKIX) block holding an Ed25519 or ECDSA
// P-256 key. Any other key type, more than one key, or anything else is an
// error that says which types are accepted.
func ParsePublicKey(s string) (ssh.PublicKey, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("empty public key (%s)", acceptedKeys)
	}
	if strings.HasPrefix(s, "-----BEGIN") {
		block, rest := pem.Decode([]byte(s))
		if block == nil {
			return nil, fmt.Errorf("public key: malformed PEM block (%s)", acceptedKeys)
		}
		if block.Type != "PUBLIC KEY" || len(block.Headers) != 0 {
			return nil, fmt.Errorf("public key: PEM block type %q is not \"PUBLIC KEY\" (%s)", block.Type, acceptedKeys)
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, fmt.Errorf("public key: unexpected data after the PEM block; give one key per entry")
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %w (%s)", err, acceptedKeys)
		}
		return sshKey(pub)
	}
	pub, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("public key: not an SSH public key line or PEM block (%s)", acceptedKeys)
	}
	if len(options) != 0 {
		return nil, fmt.Errorf("public key: authorized_keys options are not supported; give the bare key line")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("public key: more than one key; give one key per entry")
	}
	switch pub.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256:
		return pub, nil
	default:
		return nil, fmt.Errorf("public key: type %q is not accepted (%s)", pub.Type(), acceptedKeys)
	}
}

// ringKey is one key of a [KeyRing], with its crypto form for DSSE.
type ringKey struct {
	signer string
	ssh    ssh.PublicKey
	crypto crypto.PublicKey // ed25519.PublicKey or *ecdsa.PublicKey
}

// KeyRing maps key fingerprints to the signer that holds the key. Each key
// belongs to exactly one signer. A KeyRing is safe for concurrent use.
type KeyRing struct {
	mu   sync.RWMutex
	keys map[string]ringKey
}

// NewKeyRing returns an empty key ring.
func NewKeyRing() *KeyRing {
	return &KeyRing{keys: map[string]ringKey{}}
}

// Add parses key (see [ParsePublicKey]) and registers it for signer,
// returning its fingerprint. It is an error if the key is already
// registered, to any signer, or if signer is not a valid name.
func (k *KeyRing) Add(signer string, key string) (fingerprint string, err error) {
	if !writ.ValidName(signer) {
		return "", fmt.Errorf("signer %q: not a valid name (lowercase letters, digits, '.', '_', '-')", signer)
	}
	pub, err := ParsePublicKey(key)
	if err != nil {
		return "", fmt.Errorf("signer %s: %w", signer, err)
	}
	cp, ok := pub.(ssh.CryptoPublicKey)
	if !ok {
		return "", fmt.Errorf("signer %s: key type %s has no public key form", signer, pub.Type())
	}
	fp := ssh.FingerprintSHA256(pub)
	k.mu.Lock()
	defer k.mu.Unlock()
	if prev, ok := k.keys[fp]; ok {
		if prev.signer == signer {
			return "", fmt.Errorf("signer %s: key %s is listed twice", signer, fp)
		}
		return "", fmt.Errorf("signer %s: key %s is already a key of signer %s; a key may belong to one signer only", signer, fp, prev.signer)
	}
	k.keys[fp] = ringKey{signer: signer, ssh: pub, crypto: cp.CryptoPublicKey()}
	return fp, nil
}

// Lookup returns the signer and key registered under fingerprint.
func (k *KeyRing) Lookup(fingerprint string) (signer string, pub ssh.PublicKey, ok bool) {
	rk, ok := k.lookup(fingerprint)
	return rk.signer, rk.ssh, ok
}

func (k *KeyRing) lookup(fingerprint string) (ringKey, bool) {
	if k == nil {
		return ringKey{}, false
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	rk, ok := k.keys[fingerprint]
	return rk, ok
}

// LoadPrivateKey parses a PEM private key: PKCS#8 ("PRIVATE KEY"), SEC1
// ("EC PRIVATE KEY") or OpenSSH ("OPENSSH PRIVATE KEY", unencrypted). Only
// Ed25519 and ECDSA P-256 keys are accepted. Errors never contain key
// material.
func LoadPrivateKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("private key: no PEM block found (want PKCS#8 \"PRIVATE KEY\", \"EC PRIVATE KEY\" or \"OPENSSH PRIVATE KEY\")")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "OPENSSH PRIVATE KEY":
		key, err = ssh.ParseRawPrivateKey(pem.EncodeToMemory(block))
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, errors.New("private key: the OpenSSH key is encrypted; writ needs an unencrypted key file (remove the passphrase with ssh-keygen -p, into a file only writ can read)")
		}
	default:
		return nil, fmt.Errorf("private key: PEM type %q is not supported (want PKCS#8 \"PRIVATE KEY\", \"EC PRIVATE KEY\" or \"OPENSSH PRIVATE KEY\")", block.Type)
	}
	if err != nil {
		// x509 and ssh parse errors describe structure, not key bytes.
		return nil, fmt.Errorf("private key: %w", err)
	}
	switch k := key.(type) {
	case *ed25519.PrivateKey:
		return *k, nil
	case ed25519.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("private key: ECDSA key is not on P-256 (accepted: Ed25519 or ECDSA P-256)")
		}
		return k, nil
	default:
		return nil, fmt.Errorf("private key: type %T is not accepted (accepted: Ed25519 or ECDSA P-256)", key)
	}
}

// MarshalPrivateKeyPEM encodes an Ed25519 or ECDSA P-256 private key as a
// PKCS#8 "PRIVATE KEY" PEM block.
func MarshalPrivateKeyPEM(k crypto.Signer) ([]byte, error) {
	switch key := k.(type) {
	case ed25519.PrivateKey:
	case *ecdsa.PrivateKey:
		if key.Curve != elliptic.P256() {
			return nil, errors.New("private key: ECDSA key is not on P-256")
		}
	default:
		return nil, fmt.Errorf("private key: type %T is not accepted (accepted: ed25519.PrivateKey or *ecdsa.PrivateKey on P-256)", k)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
