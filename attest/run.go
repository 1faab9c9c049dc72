package attest

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// PredicateRun is the predicate type of a run attestation: what writ
// witnessed of one run, from its trigger to its end.
const PredicateRun = "https://writ.dev/attestation/run/v1"

// DigestGitCommit is the subject digest algorithm of a git commit (the
// in-toto name of a commit id).
const DigestGitCommit = "gitCommit"

// RunPredicate is the predicate of a run attestation. Witnessed is what
// writ itself saw and enforced (the signed trigger, every decision, the
// bytes pushed through its git gateway, the credentials it issued, the
// approvals humans signed); AgentAsserted is what the agent only said
// about itself (outcomes it reported, reviews it wrote, the reason it gave
// for ending), never evidence of anything. LogProof ties the run's end
// event to a signed checkpoint of writ's audit log.
type RunPredicate struct {
	Run           string        `json:"run"`
	Witnessed     RunWitnessed  `json:"witnessed"`
	AgentAsserted AgentAsserted `json:"agentAsserted"`
	LogProof      LogProof      `json:"logProof"`
}

// RunWitnessed is what writ witnessed of a run.
type RunWitnessed struct {
	Agent        string          `json:"agent"`
	Identity     string          `json:"identity"` // the run's SPIFFE ID
	Profile      string          `json:"profile"`
	Trigger      TriggerRef      `json:"trigger"`
	Ticket       TicketRef       `json:"ticket"`
	ScopeDigest  string          `json:"scopeDigest"`
	PolicyDigest []string        `json:"policyDigests"` // every policy bundle that decided for the run, in order of first use
	Parent       string          `json:"parent,omitempty"`
	Depth        int             `json:"depth"`
	Actions      ActionCounts    `json:"actions"`
	Approvals    []ApprovalRef   `json:"approvals"`
	Credentials  []CredentialRef `json:"credentials"`
	Pushes       []PushRef       `json:"pushes"`
	Merges       []MergeRef      `json:"merges"`
	StartedAt    time.Time       `json:"startedAt"`
	EndedAt      time.Time       `json:"endedAt"`
	EndState     string          `json:"endState"`            // ended, killed or expired
	EndedBy      string          `json:"endedBy,omitempty"`   // the actor of the end event
	EndReason    string          `json:"endReason,omitempty"` // when a human or writ ended it
}

// TriggerRef names the signed trigger a run started from.
type TriggerRef struct {
	ID        string `json:"id"`
	Digest    string `json:"digest"`
	Signer    string `json:"signer"`
	SignerKey string `json:"signerKey,omitempty"`
}

// TicketRef is the ticket of a run's trigger.
type TicketRef struct {
	System string `json:"system"`
	ID     string `json:"id"`
	URL    string `json:"url,omitempty"`
}

// ActionCounts counts a run's decisions by verdict.
type ActionCounts struct {
	Allowed          int `json:"allowed"`
	Denied           int `json:"denied"`
	ApprovalRequired int `json:"approvalRequired"`
}

// ApprovalRef is one human verdict on an approval request of the run, by
// the log index of its event.
type ApprovalRef struct {
	ID       string `json:"id"`
	Approver string `json:"approver"`
	Verdict  string `json:"verdict"`
	LogIndex int64  `json:"logIndex"`
}

// CredentialRef is one credential writ issued to the run.
type CredentialRef struct {
	Lease     string    `json:"lease"`
	Kind      string    `json:"kind"`
	Target    string    `json:"target"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
	Static    bool      `json:"static,omitempty"` // a static secret: it outlives the lease
	LogIndex  int64     `json:"logIndex"`
}

// PushRef is one push writ's git gateway accepted from the run.
type PushRef struct {
	Repo     string   `json:"repo"`
	Commits  []string `json:"commits"`
	LogIndex int64    `json:"logIndex"`
}

// MergeRef is one merge by approved SHA of the run's change.
type MergeRef struct {
	Repo     string `json:"repo"`
	Into     string `json:"into"`
	Head     string `json:"head"`
	Approval string `json:"approval"`
	LogIndex int64  `json:"logIndex"`
}

// AgentAsserted is what the agent said about itself: recorded, never
// evidence.
type AgentAsserted struct {
	Outcomes  int    `json:"outcomes"`            // outcomes the agent reported for its actions
	Reviews   int    `json:"reviews"`             // reviews the agent wrote
	EndReason string `json:"endReason,omitempty"` // the reason the run gave when it ended itself
}

// LogProof proves that an event is in writ's audit log: the exact event
// bytes, their log index, an inclusion proof (base64 hashes, leaf to
// root) and the signed checkpoint (a signed note) it leads to.
type LogProof struct {
	Index      int64    `json:"index"`
	Size       int64    `json:"size"`
	Entry      []byte   `json:"entry"` // base64 in JSON
	Proof      []string `json:"proof"`
	Checkpoint string   `json:"checkpoint"`
}

// MarshalPublicKey returns the PEM (PKIX) form of the attest key's public
// half: what cosign's --key and `writ attest verify --key` read.
func MarshalPublicKey(pub *ecdsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKey reads a PEM (PKIX) ECDSA P-256 public key.
func ParsePublicKey(data []byte) (*ecdsa.PublicKey, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("attest: not a PEM public key")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("attest: the key is not ECDSA")
	}
	return pub, nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// EventSigned is the audit event type of an attestation writ signed; its
// details carry the DSSE envelope.
const EventSigned = "attestation.signed"
