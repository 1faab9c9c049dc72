package broker

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"time"

	"github.com/writ-dev/writ"
)

// Egress proxy credentials (docs/design.md §4.2): the egress proxy takes an
// opaque per-run lease, valid until the run's deadline and revoked when the
// run stops, as its proxy credential. The lease itself grants nothing but
// the right to ask the proxy: every connection through it is its own
// policy decision (an egress action), so issuing it is not one. It is
// "writ_egress_" + the lease's ULID + "_" + 43 characters of base64url
// randomness; only the SHA-256 of the random part is stored.
const (
	egressPrefix    = "writ_egress_"
	egressSecretLen = 43
	// EgressTarget is the target of every egress lease.
	EgressTarget = "proxy"
)

// issueEgress issues run's egress proxy lease.
func (b *Broker) issueEgress(ctx context.Context, run *writ.Run, actor string) (*writ.IssuedCredential, error) {
	now := b.now()
	if !run.LiveAt(now) {
		return nil, writ.Errorf(writ.KindConflict, "run_not_active", "run %s is %s; a lease is issued only to an active run", run.ID, run.State)
	}
	if run.Deadline.Sub(now) < time.Second {
		return nil, writ.Errorf(writ.KindConflict, "run_ending", "run %s reaches its deadline in under a second; no credential is issued", run.ID)
	}
	var r [32]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, err
	}
	secret := base64.RawURLEncoding.EncodeToString(r[:])
	sum := sha256.Sum256([]byte(secret))
	ulid := writ.NewULID(now, nil)
	lease := &writ.Lease{
		ID: "lse_" + ulid, Run: run.ID, Kind: writ.CredentialEgress, Target: EgressTarget, Permissions: []string{"connect"},
		ExpiresAt: run.Deadline, State: writ.LeaseActive,
	}
	if err := b.cfg.Store.InsertLease(ctx, lease, nil, sum[:], issuedEvent(lease, actor)); err != nil {
		return nil, err
	}
	b.log.InfoContext(ctx, "egress lease issued", "lease", lease.ID, "run", string(run.ID), "expires", lease.ExpiresAt)
	return &writ.IssuedCredential{Lease: lease, Credential: writ.Credential{
		"username":  string(run.ID),
		"password":  egressPrefix + ulid + "_" + secret,
		"expiresAt": lease.ExpiresAt.UTC().Format(time.RFC3339),
	}}, nil
}

// CheckEgress checks a proxy credential presented to the egress proxy
// (Proxy-Authorization: Basic, user = run id, password = the lease's
// secret). It returns the lease; every refusal is a KindUnauthenticated
// error saying why, and the secret is compared in constant time.
func (b *Broker) CheckEgress(ctx context.Context, user, password string) (*writ.Lease, error) {
	bad := func(code, format string, args ...any) error {
		return writ.Errorf(writ.KindUnauthenticated, code, format, args...)
	}
	rest, ok := strings.CutPrefix(password, egressPrefix)
	if !ok || len(rest) != 26+1+egressSecretLen || rest[26] != '_' {
		return nil, bad("invalid_credential", "not a writ egress credential; use the proxy URL writ run puts in HTTPS_PROXY")
	}
	ulid, secret := rest[:26], rest[27:]
	if _, err := writ.ParseULID(ulid); err != nil {
		return nil, bad("invalid_credential", "not a writ egress credential")
	}
	l, verifier, runState, err := b.cfg.Store.LeaseVerifier(ctx, "lse_"+ulid)
	if writ.ErrorKind(err) == writ.KindNotFound {
		return nil, bad("invalid_credential", "unknown egress credential")
	}
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(secret))
	if len(verifier) != sha256.Size || subtle.ConstantTimeCompare(sum[:], verifier) != 1 || l.Kind != writ.CredentialEgress ||
		subtle.ConstantTimeCompare([]byte(user), []byte(l.Run)) != 1 {
		return nil, bad("invalid_credential", "unknown egress credential")
	}
	switch {
	case l.State != writ.LeaseActive:
		return nil, bad("credential_revoked", "this egress credential was revoked (%s)", l.RevokeReason)
	case runState != writ.RunActive:
		return nil, bad("run_not_active", "run %s is %s; its credentials no longer work", l.Run, runState)
	case !b.now().Before(l.ExpiresAt):
		return nil, bad("credential_expired", "this egress credential expired at %s", l.ExpiresAt.Format(time.RFC3339))
	case l.RevokeReason != "":
		return nil, bad("credential_revoked", "this egress credential is being revoked")
	}
	return l, nil
}
