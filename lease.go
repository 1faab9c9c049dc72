package writ

import (
	"log/slog"
	"time"
)

// Event types of the credential broker (docs/design.md §4.6).
const (
	EventCredentialIssued  = "credential.issued"
	EventCredentialRevoked = "credential.revoked"
	EventSecretChanged     = "secret.changed"
)

// Lease states. A lease is written "issuing" before a backend with outside
// effects (a database role) creates the credential, "active" once the run
// holds it, and "revoked" once the backend has taken it back (or, for a
// credential only writ checks, once writ stops accepting it). A revoked
// lease never becomes active again.
const (
	LeaseIssuing = "issuing"
	LeaseActive  = "active"
	LeaseRevoked = "revoked"
)

// Credential kinds with a built-in backend.
const (
	CredentialGit      = "git"
	CredentialSecret   = "secret"
	CredentialPostgres = "postgres"
	CredentialVault    = "vault"
	CredentialGitHub   = "github"
	// CredentialEgress is the egress proxy's credential: one per run, valid
	// until the run's deadline (MaxLeaseTTL does not apply), revoked when
	// the run stops; every connection through it is decided on its own.
	CredentialEgress = "egress"
)

// MaxLeaseTTL is the longest any lease lives, whatever policy says
// (docs/design.md §4.2: downstream credentials ≤ 5 min by default; policy may
// lower it, and the run's deadline always caps it).
const MaxLeaseTTL = 15 * time.Minute

// Lease is one issued credential, bound to the run that asked for it.
// It never holds the credential itself.
type Lease struct {
	ID          string   `json:"id"`
	Run         RunID    `json:"run"`
	Kind        string   `json:"kind"`
	Target      string   `json:"target"`
	Permissions []string `json:"permissions"`
	Decision    string   `json:"decision"`
	// Approval is the approval request whose use allowed the lease, when
	// one was needed.
	Approval string `json:"approval,omitempty"`
	// Static marks a lease on a static secret: the secret outlives the
	// lease, so revoking the lease cannot take it back (rotate it).
	Static    bool      `json:"static,omitempty"`
	State     string    `json:"state"`
	IssuedAt  time.Time `json:"issuedAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
	// RevokeReason is why it was revoked: run_ended, run_killed,
	// run_suspended, run_expired, expired, revoked (by a person or the
	// run), issue_failed.
	RevokeReason string `json:"revokeReason,omitempty"`
	// Attempts counts revocation attempts; LastError is the last failed
	// one's error, as safe to show.
	Attempts  int    `json:"revokeAttempts,omitempty"`
	LastError string `json:"lastError,omitempty"`
	// Details are the backend's facts about the credential that are safe
	// to record (a role name, a Vault lease id), never the secret.
	Details map[string]string `json:"details,omitempty"`
}

// Live reports whether the lease may still be used.
func (l *Lease) Live(now time.Time) bool {
	return l.State == LeaseActive && now.Before(l.ExpiresAt)
}

// LeaseFilter selects leases to list.
type LeaseFilter struct {
	Run   RunID
	State string
	Limit int
}

// Credential is what a lease hands the run: named fields such as token,
// username, password or value. It never enters an event, a log line or an
// error message; its String and LogValue say so instead of printing it.
type Credential map[string]string

// String hides the credential from fmt.
func (c Credential) String() string { return "[credential redacted]" }

// GoString hides the credential from %#v.
func (c Credential) GoString() string { return c.String() }

// LogValue hides the credential from slog.
func (c Credential) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Secret is a static secret as the store keeps it: sealed by a key the
// store never sees.
type Secret struct {
	Environment string    `json:"environment"`
	Name        string    `json:"name"`
	Version     int       `json:"version"`
	Sealed      []byte    `json:"-"`
	UpdatedAt   time.Time `json:"updatedAt"`
	UpdatedBy   string    `json:"updatedBy"`
}

// Revocation is one lease the revoker claimed.
type Revocation struct {
	Lease  *Lease
	Handle []byte
	// Reason is why it is due: the reason someone gave, run_<state> for a
	// run that stopped, expired, or issue_incomplete for a lease whose
	// issuing never finished.
	Reason string
	// Alerted reports whether an alert was already raised for it.
	Alerted bool
}

// RevocationResult is the outcome of one claimed revocation.
type RevocationResult struct {
	ID string
	// Revoked is true when the backend took the credential back; Event
	// (credential.revoked) is then appended, once.
	Revoked bool
	Reason  string
	Event   *Event
	// A failed attempt: the error to show, when to try again, and an
	// alert event to append (the lease is then marked alerted).
	Error       string
	NextAttempt time.Time
	Alert       *Event
}

// CredentialRequest is the body of POST /v1/runs/{id}/credentials: a
// credential of kind (a backend) for target, with permissions, for at
// most TTL (0: as long as policy allows).
type CredentialRequest struct {
	Kind        string   `json:"kind"`
	Target      string   `json:"target"`
	Permissions []string `json:"permissions,omitempty"`
	TTL         Duration `json:"ttl,omitzero"`
}

// IssuedCredential is the answer to a credential request: the lease and,
// once only, the credential itself.
type IssuedCredential struct {
	Lease      *Lease     `json:"lease"`
	Credential Credential `json:"credential"`
}
