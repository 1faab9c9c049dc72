package broker

import (
	"context"
	"time"

	"github.com/writ-dev/writ"
)

// Source issues and revokes one kind of credential (a backend). Sources
// never see the store: the broker records what they return.
type Source interface {
	// Issue creates a credential for req that stops working at
	// req.ExpiresAt at the latest. It returns what the run receives, the
	// handle Revoke will need, and facts safe to record. A credential an
	// error return leaves behind must be one Revoke(handle) would remove,
	// or none.
	Issue(ctx context.Context, req *IssueRequest) (*Issued, error)
	// Revoke takes the credential back. Revoking one that is already gone
	// (expired, dropped, revoked before) is not an error: the broker may
	// call Revoke again after a crash or a timeout.
	Revoke(ctx context.Context, lease *writ.Lease, handle []byte) error
}

// Planner is implemented by sources whose credentials have outside effects
// (a database role): Plan returns, before Issue runs, the handle Revoke
// needs, so the broker writes the lease ahead of issuing it and a crash
// between the two never leaves a credential nobody revokes.
type Planner interface {
	Plan(req *IssueRequest) (handle []byte, err error)
}

// IssueRequest is what a source is asked to issue. The broker has checked
// it against the run's scope and policy; a source still refuses a target
// or permission it does not know (writ.KindInvalid) — that is a
// configuration mismatch, not a policy question.
type IssueRequest struct {
	Lease       string    // the lease id (lse_…), unique: usable in names
	Run         *writ.Run // the run the credential is for
	Target      string    // what the credential is for: a repo, a database, a path…
	Permissions []string  // as requested, normalized by the broker
	ExpiresAt   time.Time // the credential must not outlive this
	// Handle is the planned handle, for a Planner source.
	Handle []byte
}

// Issued is a credential a source created.
type Issued struct {
	// Credential is what the run receives. It is never stored.
	Credential writ.Credential
	// Handle is what Revoke needs (a role name, a Vault lease id, a token
	// to delete). It is stored sealed when the broker has a key, and is
	// never logged.
	Handle []byte
	// Verifier, for credentials writ itself checks when they are presented
	// (git), is the SHA-256 of the secret part; the broker stores it.
	Verifier []byte
	// ExpiresAt, when set and earlier than asked, is when the backend ends
	// the credential itself (a GitHub installation token lives an hour at
	// most, so never earlier than asked there; a Vault lease may be
	// shorter).
	ExpiresAt time.Time
	// Details are facts safe to record in events and lists: a role name,
	// a Vault lease id, the token's permissions.
	Details map[string]string
	// Static marks a static secret: revoking the lease cannot take the
	// value back.
	Static bool
}
