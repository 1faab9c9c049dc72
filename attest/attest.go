// Package attest makes and checks writ's signed attestations: in-toto
// Statements v1 (https://in-toto.io/Statement/v1) in DSSE envelopes of
// payload type application/vnd.in-toto+json, signed by writ's attest key
// (ECDSA P-256, ASN.1 DER signatures over SHA-256 of the DSSE PAE — the
// form cosign verify-blob-attestation checks). Runs never reach that key.
package attest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// Types of the in-toto and DSSE layers.
const (
	StatementType = "https://in-toto.io/Statement/v1"
	PayloadType   = "application/vnd.in-toto+json"
)

// Predicate types writ defines.
const (
	PredicateApproval = "https://writ.dev/attestation/approval/v1"
)

// Subject is one thing a statement is about, named and pinned by digest
// (algorithm → lowercase hex, such as "sha256" or "gitCommit").
type Subject struct {
	Name   string            `json:"name,omitempty"`
	Digest map[string]string `json:"digest"`
}

// Statement is an in-toto Statement v1.
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     any       `json:"predicate"`
}

type envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"`
	Signatures  []signature `json:"signatures"`
}

type signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// KeyID is the key id writ writes into its envelopes: "sha256:" + hex of
// the SHA-256 of the public key's PKIX DER.
func KeyID(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Sign serializes st and signs it with k, returning the DSSE envelope's
// JSON.
func Sign(st *Statement, k *ecdsa.PrivateKey) ([]byte, error) {
	if k == nil || k.Curve != elliptic.P256() {
		return nil, errors.New("attest: the attest key must be ECDSA P-256")
	}
	if st.Type == "" {
		st.Type = StatementType
	}
	if st.Type != StatementType || st.PredicateType == "" || len(st.Subject) == 0 {
		return nil, errors.New("attest: a statement needs the v1 type, a predicate type and at least one subject")
	}
	for _, s := range st.Subject {
		if len(s.Digest) == 0 {
			return nil, errors.New("attest: every subject needs a digest")
		}
	}
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	h := sha256.Sum256(dsse.PAE(PayloadType, payload))
	sig, err := ecdsa.SignASN1(rand.Reader, k, h[:])
	if err != nil {
		return nil, fmt.Errorf("attest: sign: %w", err)
	}
	kid, err := KeyID(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	return json.Marshal(envelope{PayloadType: PayloadType, Payload: base64.StdEncoding.EncodeToString(payload),
		Signatures: []signature{{KeyID: kid, Sig: base64.StdEncoding.EncodeToString(sig)}}})
}

// Verify checks that env is a DSSE envelope of an in-toto statement signed
// by pub and returns the statement and its exact payload bytes.
func Verify(env []byte, pub *ecdsa.PublicKey) (*Statement, []byte, error) {
	var e envelope
	if err := json.Unmarshal(env, &e); err != nil {
		return nil, nil, fmt.Errorf("attest: not a DSSE envelope: %w", err)
	}
	if e.PayloadType != PayloadType {
		return nil, nil, fmt.Errorf("attest: payload type %q, want %s", e.PayloadType, PayloadType)
	}
	payload, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return nil, nil, errors.New("attest: payload is not base64")
	}
	h := sha256.Sum256(dsse.PAE(PayloadType, payload))
	ok := false
	for _, s := range e.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err == nil && ecdsa.VerifyASN1(pub, h[:], sig) {
			ok = true
			break
		}
	}
	if !ok {
		return nil, nil, errors.New("attest: no signature verifies with the attest key")
	}
	var st Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, nil, fmt.Errorf("attest: payload is not a statement: %w", err)
	}
	if st.Type != StatementType {
		return nil, nil, fmt.Errorf("attest: statement type %q, want %s", st.Type, StatementType)
	}
	return &st, payload, nil
}
