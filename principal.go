package writ

import (
	"context"
	"time"
)

// PrincipalKind says what authenticated a request.
type PrincipalKind string

// Principal kinds.
const (
	PrincipalHuman PrincipalKind = "human"
	PrincipalRun   PrincipalKind = "run"
)

// Principal is the authenticated caller of a request.
type Principal struct {
	Kind   PrincipalKind
	Name   string   // the human's name, or the run's SPIFFE ID
	Groups []string // a human's groups
	Run    RunID    // for run principals
	JKT    string   // for run principals: the DPoP key thumbprint the token is bound to, if any
}

// Actor returns the actor string events record for p.
func (p *Principal) Actor() string {
	if p.Kind == PrincipalRun {
		return "run:" + string(p.Run)
	}
	return HumanActor(p.Name)
}

// InGroup reports whether p is a human in group g.
func (p *Principal) InGroup(g string) bool {
	if p.Kind != PrincipalHuman {
		return false
	}
	for _, x := range p.Groups {
		if x == g {
			return true
		}
	}
	return false
}

// GroupAdmins is the configured group whose members administer writ.
const GroupAdmins = "admins"

type principalKey struct{}

// NewContextWithPrincipal returns a copy of ctx carrying p.
func NewContextWithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFromContext returns the principal in ctx, or nil.
func PrincipalFromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// HumanToken is a human's API token as stored: only the SHA-256 of its
// secret part is kept.
type HumanToken struct {
	ID        string    `json:"id"`
	Human     string    `json:"human"`
	Hash      []byte    `json:"-"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	CreatedBy string    `json:"createdBy"`
}

// SigningKey is one public key of writ's signing history (docs/design.md §4.7):
// the private half stays in a file; the store keeps the public half so
// every replica publishes the same set. A key is current until it is
// retired by a rotation; it stays published until NotAfter, when every
// token it signed has expired.
type SigningKey struct {
	Kind      string    `json:"kind"` // "identity", "log" or "attest"
	ID        string    `json:"id"`   // the kid: RFC 7638 thumbprint
	Public    []byte    `json:"-"`    // PKIX DER
	CreatedAt time.Time `json:"createdAt"`
	RetiredAt time.Time `json:"retiredAt,omitzero"`
	NotAfter  time.Time `json:"notAfter,omitzero"` // zero while current
}
