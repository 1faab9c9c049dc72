package token

import (
	"crypto/ecdsa"
	"encoding/json"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// ParseJWKS reads a JSON Web Key Set as a relying party does and returns
// its ES256 signing keys by kid. Keys of other types or algorithms, and
// private keys, are refused rather than skipped: a JWKS from writ holds only
// public P-256 keys, so anything else means the document is not writ's.
func ParseJWKS(doc []byte) (map[string]*ecdsa.PublicKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	out := make(map[string]*ecdsa.PublicKey, len(set.Keys))
	for i, k := range set.Keys {
		if !k.IsPublic() {
			return nil, fmt.Errorf("jwks: key %d (%s) is a private key", i, k.KeyID)
		}
		pub, ok := k.Key.(*ecdsa.PublicKey)
		if !ok || (k.Algorithm != "" && k.Algorithm != Algorithm) {
			return nil, fmt.Errorf("jwks: key %d (%s) is not an %s key", i, k.KeyID, Algorithm)
		}
		kid, err := KeyID(pub)
		if err != nil {
			return nil, fmt.Errorf("jwks: key %d: %w", i, err)
		}
		if k.KeyID != kid {
			return nil, fmt.Errorf("jwks: key %d: kid %q is not the key's thumbprint", i, k.KeyID)
		}
		if _, dup := out[kid]; dup {
			return nil, fmt.Errorf("jwks: kid %q appears twice", kid)
		}
		out[kid] = pub
	}
	return out, nil
}
