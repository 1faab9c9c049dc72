package trigger

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hiddeco/sshsig"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"golang.org/x/crypto/ssh"

	"github.com/writ-dev/writ"
)

type dsseWire struct {
	PayloadType string        `json:"payloadType"`
	Payload     string        `json:"payload"`
	Signatures  []dsseSigWire `json:"signatures"`
}

type sshWire struct {
	Payload string `json:"payload"`
	SSHSig  string `json:"sshsig"`
}

// SignDSSE signs payload as a DSSE envelope of payloadType with k and
// returns the envelope's JSON. The keyid is [Fingerprint] of k's public key.
// Ed25519 signatures are the 64 raw bytes; ECDSA P-256 signatures are ASN.1
// DER over SHA-256 of the PAE, as DSSE and cosign make them.
func SignDSSE(payload []byte, payloadType string, k crypto.Signer) ([]byte, error) {
	keyID, err := Fingerprint(k.Public())
	if err != nil {
		return nil, fmt.Errorf("sign dsse: %w", err)
	}
	pae := dsse.PAE(payloadType, payload)
	var sig []byte
	switch pub := k.Public().(type) {
	case ed25519.PublicKey:
		sig, err = k.Sign(rand.Reader, pae, crypto.Hash(0))
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("sign dsse: ECDSA key is not on P-256")
		}
		h := sha256.Sum256(pae)
		sig, err = k.Sign(rand.Reader, h[:], crypto.SHA256)
	}
	if err != nil {
		return nil, fmt.Errorf("sign dsse: %w", err)
	}
	return json.Marshal(dsseWire{
		PayloadType: payloadType,
		Payload:     base64.StdEncoding.EncodeToString(payload),
		Signatures:  []dsseSigWire{{KeyID: keyID, Sig: base64.StdEncoding.EncodeToString(sig)}},
	})
}

// SignSSH signs payload with k as an SSH signature in namespace (sha512, as
// ssh-keygen -Y sign does) and returns {"payload", "sshsig"} JSON.
func SignSSH(payload []byte, namespace string, k crypto.Signer) ([]byte, error) {
	if _, err := Fingerprint(k.Public()); err != nil { // restricts key types
		return nil, fmt.Errorf("sign ssh: %w", err)
	}
	signer, err := ssh.NewSignerFromSigner(k)
	if err != nil {
		return nil, fmt.Errorf("sign ssh: %w", err)
	}
	sig, err := sshsig.Sign(bytes.NewReader(payload), signer, sshsig.HashSHA512, namespace)
	if err != nil {
		return nil, fmt.Errorf("sign ssh: %w", err)
	}
	return WrapSSHSig(payload, sshsig.Armor(sig))
}

// WrapSSHSig returns the {"payload", "sshsig"} JSON for payload and an
// armored SSH signature over it, as ssh-keygen -Y sign writes it. It checks
// that armoredSig parses, not that it verifies.
func WrapSSHSig(payload, armoredSig []byte) ([]byte, error) {
	if _, err := sshsig.Unarmor(armoredSig); err != nil {
		return nil, fmt.Errorf("wrap ssh signature: not an armored SSH signature (the output of ssh-keygen -Y sign): %w", err)
	}
	return json.Marshal(sshWire{
		Payload: base64.StdEncoding.EncodeToString(payload),
		SSHSig:  string(armoredSig),
	})
}

// Template returns an example trigger issued by issuer at now: agent
// refactor-bot under profile refactor, on acme/api's main branch (writable,
// src/** and docs/**), tools read, edit, shell:build and shell:test, 30
// minutes, expiring an hour after now, with a fresh id.
func Template(now time.Time, issuer string) writ.Trigger {
	now = now.UTC().Truncate(time.Second)
	return writ.Trigger{
		APIVersion: writ.TriggerAPIVersion,
		Kind:       writ.TriggerKind,
		ID:         writ.NewULID(now, nil),
		IssuedAt:   now,
		ExpiresAt:  now.Add(time.Hour),
		Issuer:     issuer,
		Agent:      "refactor-bot",
		Profile:    "refactor",
		Ticket:     writ.Ticket{System: "jira", ID: "ENG-123", URL: "https://jira.example.org/browse/ENG-123"},
		Task:       "Rename the package-level logger to log and update its call sites.",
		Scope: writ.Scope{
			Repos:        []writ.RepoScope{{Name: "acme/api", Base: "main", Write: true, Paths: []string{"src/**", "docs/**"}}},
			Tools:        []string{"read", "edit", "shell:build", "shell:test"},
			Hosts:        []string{},
			Environments: []string{},
			Secrets:      []string{},
			MaxDuration:  writ.Duration(30 * time.Minute),
		},
	}
}
