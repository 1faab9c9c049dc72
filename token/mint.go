package token

import (
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// Signer mints JWT-SVIDs with one private key. It is safe for concurrent
// use.
type Signer struct {
	kid string
	js  jose.Signer // built once: ES256, kid and typ are fixed per Signer
}

// NewSigner returns a Signer for key, which must be an ECDSA P-256 private
// key. Its kid is KeyID(&key.PublicKey).
func NewSigner(key *ecdsa.PrivateKey) (*Signer, error) {
	if key == nil {
		return nil, errors.New("new signer: no private key")
	}
	kid, err := KeyID(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("new signer: %w", err)
	}
	js, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return nil, fmt.Errorf("new signer: %w", err)
	}
	return &Signer{kid: kid, js: js}, nil
}

// KeyID returns the kid of the signer's key.
func (s *Signer) KeyID() string { return s.kid }

// Mint signs c as a compact JWS with the header
// {"alg":"ES256","kid":…,"typ":"JWT"} and returns it.
//
// When c.ID is empty, Mint sets it to a fresh jti (128 random bits,
// base64url), so the caller can record it. Mint refuses claims that Verify
// would never accept: an empty Issuer, Subject, Audience or Run, a Subject
// that is not a SPIFFE ID, a zero IssuedAt, an Expiry not after IssuedAt
// (in whole seconds), a NotBefore not before Expiry, a JKT that is not a
// SHA-256 thumbprint, or an act chain with an empty subject or more than 32
// links. Mint does not cap the lifetime: that is the caller's policy.
func (s *Signer) Mint(c *Claims) (string, error) {
	if c == nil {
		return "", errors.New("mint: no claims")
	}
	switch {
	case c.Issuer == "":
		return "", errors.New("mint: the issuer is empty")
	case c.Audience == "":
		return "", errors.New("mint: the audience is empty")
	case !validSPIFFEID(c.Subject):
		return "", fmt.Errorf("mint: subject %q is not a SPIFFE ID", c.Subject)
	case c.Run == "":
		return "", errors.New("mint: the run claim is empty")
	case c.IssuedAt.IsZero() || c.Expiry.IsZero():
		return "", errors.New("mint: issuedAt and expiry are required")
	case c.JKT != "" && !validThumbprint(c.JKT):
		return "", errors.New("mint: jkt is not a base64url SHA-256 thumbprint")
	}
	iat, exp := c.IssuedAt.Unix(), c.Expiry.Unix()
	if iat < 0 || exp > maxNumericDate {
		return "", errors.New("mint: issuedAt or expiry is out of range")
	}
	if exp <= iat {
		return "", errors.New("mint: the expiry must be at least a second after issuedAt")
	}
	mc := mintClaims{
		Iss:     c.Issuer,
		Sub:     c.Subject,
		Aud:     c.Audience,
		Exp:     exp,
		Iat:     iat,
		Jti:     c.ID,
		Run:     c.Run,
		Agent:   c.Agent,
		Profile: c.Profile,
		Ticket:  c.Ticket,
	}
	if !c.NotBefore.IsZero() {
		nbf := c.NotBefore.Unix()
		if nbf < 0 || nbf >= exp {
			return "", errors.New("mint: notBefore must be before the expiry")
		}
		mc.Nbf = &nbf
	}
	if c.JKT != "" {
		mc.Cnf = &confirmation{JKT: c.JKT}
	}
	act, err := toWireActor(c.Act)
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	mc.Act = act
	if mc.Jti == "" {
		mc.Jti = newJTI()
	}
	payload, err := json.Marshal(&mc)
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	jws, err := s.js.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	c.ID = mc.Jti
	return out, nil
}

// newJTI returns 128 random bits in base64url.
func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error; it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// validThumbprint reports whether s has the shape of a base64url SHA-256
// digest: 43 characters of the base64url alphabet.
func validThumbprint(s string) bool {
	if len(s) != 43 {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == 32
}
