package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/sqlstore"
	"github.com/writ-dev/writ/token"
)

// publishFor is how long a retired identity key stays in the JWKS: the
// longest token lifetime (15 min, DPoP-bound) plus the verification leeway.
const publishFor = 15*time.Minute + time.Minute

// identityKeys is the identity key set: the current signer and every key
// still published. The private keys are files beside the configured
// identity key (identity-<kid>.pem after a rotation); the store holds the
// public history, so every replica signs with the same current key and
// publishes the same set.
type identityKeys struct {
	store *sqlstore.DB
	path  string // the configured identity key file
	now   func() time.Time

	mu        sync.RWMutex
	current   *token.Signer
	published []token.PublicKey
	byKid     map[string]*ecdsa.PublicKey
}

func (k *identityKeys) Current() *token.Signer {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current
}

func (k *identityKeys) Lookup(kid string) (*ecdsa.PublicKey, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	pub, ok := k.byKid[kid]
	return pub, ok
}

func (k *identityKeys) Published() []token.PublicKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return append([]token.PublicKey(nil), k.published...)
}

// keyFile is where the private key of kid lives once rotated in.
func (k *identityKeys) keyFile(kid string) string {
	return filepath.Join(filepath.Dir(k.path), "identity-"+kid+".pem")
}

// register makes sure the configured key is known to the store: a key file
// seen for the first time becomes the current key (a rotation done by
// replacing the file); a configured key that was since rotated out stays
// retired.
func (k *identityKeys) register(ctx context.Context, configured *ecdsa.PrivateKey) error {
	kid, err := token.KeyID(&configured.PublicKey)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(&configured.PublicKey)
	if err != nil {
		return err
	}
	ev := &writ.Event{Type: writ.EventKeyRotated, Actor: writ.ActorSystem, Subject: "key:identity/" + kid,
		Details: map[string]any{"kind": "identity", "kid": kid, "source": "config"}}
	_, err = k.store.AddSigningKey(ctx, &writ.SigningKey{Kind: "identity", ID: kid, Public: der}, publishFor, ev)
	if writ.ErrorCode(err) == "key_retired" {
		return nil
	}
	return err
}

// reload reads the key history from the store and loads the current
// private key.
func (k *identityKeys) reload(ctx context.Context, configured *ecdsa.PrivateKey) error {
	keys, err := k.store.SigningKeys(ctx, "identity", k.now())
	if err != nil {
		return err
	}
	if len(keys) == 0 || !keys[0].RetiredAt.IsZero() {
		return fmt.Errorf("identity keys: the store has no current identity key")
	}
	published := make([]token.PublicKey, 0, len(keys))
	byKid := make(map[string]*ecdsa.PublicKey, len(keys))
	for _, sk := range keys {
		pub, err := x509.ParsePKIXPublicKey(sk.Public)
		if err != nil {
			return fmt.Errorf("identity key %s in the store: %w", sk.ID, err)
		}
		ep, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("identity key %s in the store is not ECDSA", sk.ID)
		}
		published = append(published, token.PublicKey{ID: sk.ID, Key: ep, NotAfter: sk.NotAfter})
		byKid[sk.ID] = ep
	}
	k.mu.RLock()
	cur := k.current
	k.mu.RUnlock()
	if cur == nil || cur.KeyID() != keys[0].ID {
		priv := configured
		if ckid, _ := token.KeyID(&configured.PublicKey); ckid != keys[0].ID {
			if priv, err = loadIdentityFile(k.keyFile(keys[0].ID)); err != nil {
				return fmt.Errorf("the current identity key is %s: %w", keys[0].ID, err)
			}
		}
		if cur, err = token.NewSigner(priv); err != nil {
			return err
		}
		if cur.KeyID() != keys[0].ID {
			return fmt.Errorf("identity key file %s does not hold key %s", k.keyFile(keys[0].ID), keys[0].ID)
		}
	}
	k.mu.Lock()
	k.current, k.published, k.byKid = cur, published, byKid
	k.mu.Unlock()
	return nil
}

// rotate generates a new identity key, writes it (0600) beside the
// configured one, and makes it current; the old key stays published until
// every token it signed has expired.
func (k *identityKeys) rotate(ctx context.Context, configured *ecdsa.PrivateKey, actor string) (string, error) {
	nk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	kid, err := token.KeyID(&nk.PublicKey)
	if err != nil {
		return "", err
	}
	pemBytes, err := marshalPKCS8(nk)
	if err != nil {
		return "", err
	}
	if err := writeSecretFile(k.keyFile(kid), pemBytes); err != nil {
		return "", err
	}
	der, err := x509.MarshalPKIXPublicKey(&nk.PublicKey)
	if err != nil {
		return "", err
	}
	prev := k.Current().KeyID()
	ev := &writ.Event{Type: writ.EventKeyRotated, Actor: actor, Subject: "key:identity/" + kid,
		Details: map[string]any{"kind": "identity", "kid": kid, "previous": prev, "previousPublishedFor": publishFor.String()}}
	if _, err := k.store.AddSigningKey(ctx, &writ.SigningKey{Kind: "identity", ID: kid, Public: der}, publishFor, ev); err != nil {
		os.Remove(k.keyFile(kid))
		return "", err
	}
	return kid, k.reload(ctx, configured)
}

func loadIdentityFile(path string) (*ecdsa.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("identity key file: %w (replicas must share the keys directory)", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity key %s: permissions %#o are too open; run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseP256(data)
}
